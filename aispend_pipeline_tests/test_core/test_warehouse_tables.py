"""Tables a newer version declares differently are brought up to date in place, keeping every row."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import duckdb

from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS, LINE_ITEMS
from aispend_pipeline.schemas.table import Table
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse


def _as_stored_before(table: Table) -> Table:
    """The table as earlier versions declared it: line ids as 32-character md5 hex text."""
    ids = {"line_id", "cost_line_id"}
    columns = tuple(dataclasses.replace(c, sql_type="VARCHAR") if c.name in ids else c for c in table.columns)
    return dataclasses.replace(table, columns=columns)


def test_hex_line_ids_of_an_existing_file_become_the_same_uuids(tmp_path: Path) -> None:
    path = tmp_path / "aispend.duckdb"
    hex_id = "cd77e22bb4564099ba8bb778df1033ce"
    with duckdb.connect(str(path)) as con:
        for table in (LINE_ITEMS, COST_LINE_ITEMS):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.schema}")
            con.execute(_as_stored_before(table).ddl())
        con.execute(
            "INSERT INTO main.cost_line_items (cost_line_id, line_id, usage_date, provider, service, "
            "charge_category, cost_usd, data_lag, cost_source, team, allocation_method, allocation_share) VALUES "
            f"('{hex_id}', '{hex_id}', '2026-10-01', 'openai', 'OpenAI API', 'Usage', 1.5, 'daily', 'billed', "
            "'search', 'direct', 1)"
        )

    DuckDBWarehouse(path).ensure_tables([LINE_ITEMS, COST_LINE_ITEMS])

    with duckdb.connect(str(path), read_only=True) as con:
        types = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE column_name IN ('line_id', 'cost_line_id') ORDER BY ALL"
        ).fetchall()
        rows = con.execute("SELECT cost_line_id, line_id, cost_usd FROM main.cost_line_items").fetchall()
    assert types == [
        ("cost_line_items", "cost_line_id", "UUID"),
        ("cost_line_items", "line_id", "UUID"),
        ("line_items", "line_id", "UUID"),
    ]
    assert [(str(c), str(line), str(cost)) for c, line, cost in rows] == [
        (str(uuid.UUID(hex_id)), str(uuid.UUID(hex_id)), "1.500000000000")
    ]
