"""Staging a pull: chunks appended as they arrive, lines numbered by a view, checked in SQL, dropped whole."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import duckdb
import pyarrow as pa
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


def test_columns_keep_their_types_through_arrow_and_mixed_columns_still_stage() -> None:
    # Columns go to DuckDB as Arrow arrays: dates stay dates, NULLs stay NULL, ints stay ints, and a
    # column Arrow cannot type (text and a number) still stages through object columns, cast by DuckDB.
    con = duckdb.connect()
    staging = Staging(con, "openai", [RAW_TABLE])
    typed = chunk(["p1", None], ["1.5", "2"]) | {"quantity": ["10", None]}
    staging.append(RAW_TABLE, typed, KEY_COLUMNS)
    staging.append(RAW_TABLE, chunk(["p3"], ["0.25"]) | {"quantity": [7]}, KEY_COLUMNS)
    mixed = chunk(["p4", "p5"], ["1", "2"]) | {"quantity": ["3", 4]}
    staging.append(RAW_TABLE, mixed, KEY_COLUMNS)
    assert staging.finish() == {RAW_TABLE.qualified_name: 5}
    rows = con.execute(
        f"SELECT usage_date, project_id, amount_usd, quantity, quantity_unit, arrival "
        f"FROM {staged_name(RAW_TABLE)}__arrived ORDER BY arrival"
    ).fetchall()
    assert rows == [
        (DAY, "p1", "1.5", "10", None, 0),
        (DAY, None, "2", None, None, 1),
        (DAY, "p3", "0.25", "7", None, 2),
        (DAY, "p4", "1", "3", None, 3),
        (DAY, "p5", "2", "4", None, 4),
    ]
    staging.drop()


def test_chunks_are_held_until_they_fill_row_groups_then_inserted_together(monkeypatch) -> None:
    # Small chunks written one INSERT each go through DuckDB's write-ahead log and are written again at
    # the checkpoint; held until STAGE_ROWS, they are written once. Nothing is lost or reordered.
    monkeypatch.setattr("aispend_pipeline.warehouse.staging.STAGE_ROWS", 4)
    con = duckdb.connect()
    staging = Staging(con, "openai", [RAW_TABLE])

    def staged() -> int:
        return con.execute(f"SELECT count(*) FROM {staged_name(RAW_TABLE)}").fetchone()[0]

    staging.append(RAW_TABLE, chunk(["p1", "p2"], ["1", "2"]), KEY_COLUMNS)
    staging.append(RAW_TABLE, chunk(["p3"], ["3"]) | {"quantity": [7]}, KEY_COLUMNS)
    assert staged() == 0, "three rows are held, below STAGE_ROWS"
    staging.append(RAW_TABLE, chunk(["p4"], ["4"]), KEY_COLUMNS)
    assert staged() == 4, "the fourth row fills the batch: the held chunks are inserted in one statement"
    staging.append(RAW_TABLE, chunk(["p5"], ["5"]), KEY_COLUMNS)
    assert staged() == 4
    assert staging.finish() == {RAW_TABLE.qualified_name: 5}
    rows = con.execute(
        f"SELECT project_id, amount_usd, quantity, arrival FROM {staged_name(RAW_TABLE)}__arrived ORDER BY arrival"
    ).fetchall()
    assert rows == [
        ("p1", "1", None, 0),
        ("p2", "2", None, 1),
        ("p3", "3", "7", 2),
        ("p4", "4", None, 3),
        ("p5", "5", None, 4),
    ]
    staging.drop()


def test_money_read_as_decimals_stages_as_the_same_exact_text_as_money_read_as_text() -> None:
    """Pages read as Arrow columns hand money over as DECIMAL(38, 12) (`core.columnar`), others as text:
    chunks of both kinds of one table stage together, plain (no exponent) and exact."""
    con = duckdb.connect()
    staging = Staging(con, "openai", [RAW_TABLE])
    decimals = pa.array([Decimal("0.000000000002"), Decimal("-3.25"), Decimal("12345678901234.123456789012")])
    table = pa.table({**chunk(["p1", "p2", "p3"], ["0"] * 3), "amount_usd": decimals.cast(pa.decimal128(38, 12))})
    staging.append(RAW_TABLE, table, KEY_COLUMNS)
    staging.append(RAW_TABLE, chunk(["p4"], ["1.5"]), KEY_COLUMNS)
    staging.finish()
    staged = con.execute(f"SELECT project_id, amount_usd FROM {staged_name(RAW_TABLE)} ORDER BY project_id").fetchall()
    assert staged == [
        ("p1", "0.000000000002"),
        ("p2", "-3.250000000000"),
        ("p3", "12345678901234.123456789012"),
        ("p4", "1.5"),
    ]
