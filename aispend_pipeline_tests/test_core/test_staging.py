"""Staging a pull: chunks appended as they arrive, lines numbered by a view, checked in SQL, dropped whole."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from aispend_pipeline.errors import ValidationError
from aispend_pipeline.sources.openai.source import KEY_COLUMNS, RAW_TABLE
from aispend_pipeline.warehouse.staging import Staging, staged_name

DAY = date(2026, 11, 5)


def chunk(projects: list[str | None], amounts: list[str]) -> dict[str, list]:
    n = len(projects)
    return {
        "usage_date": [DAY] * n,
        "project_id": projects,
        "line_item": ["gpt-4o, input"] * n,
        "amount_usd": amounts,
        "quantity": [None] * n,
        "quantity_unit": [None] * n,
    }


def test_identical_lines_across_chunks_are_numbered_in_arrival_order_and_dropped_whole() -> None:
    con = duckdb.connect()
    staging = Staging(con, "openai", [RAW_TABLE])
    staging.append(RAW_TABLE, chunk(["p1", "p2", "p1"], ["1.5", "2", "1.5"]), KEY_COLUMNS)
    staging.append(RAW_TABLE, chunk(["p1", None], ["0.25", "3"]), KEY_COLUMNS)
    assert staging.finish() == {RAW_TABLE.qualified_name: 5}
    numbered = con.execute(
        f"SELECT project_id, amount_usd, line_ordinal FROM {staged_name(RAW_TABLE)} ORDER BY project_id, line_ordinal"
    ).fetchall()
    assert numbered == [("p1", "1.5", 0), ("p1", "1.5", 1), ("p1", "0.25", 2), ("p2", "2", 0), (None, "3", 0)]
    staging.drop()
    left = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'incoming' "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE schema_name = 'incoming'"
    ).fetchall()
    assert left == [], "neither the numbering view nor the rows as they arrived are left"


def test_a_bad_staged_value_is_named_though_the_numbering_is_not_scanned() -> None:
    con = duckdb.connect()
    staging = Staging(con, "openai", [RAW_TABLE])
    staging.append(RAW_TABLE, chunk(["p1", "p2"], ["1.5", "1.5e3"]), KEY_COLUMNS)
    with pytest.raises(ValidationError, match=r"openai 2026-11-05: field 'amount_usd' failed str_matches"):
        staging.finish()
    staging.drop()
