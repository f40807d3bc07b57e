"""The `ledger` fixture: an empty DuckDB file with the cost line and rollup tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS, TEAM_DAILY_SPEND
from aispend_pipeline.warehouse.duckdb import _ensure

from .crafted import Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    con = duckdb.connect(str(tmp_path / "crafted.duckdb"))
    _ensure(con, COST_LINE_ITEMS)
    _ensure(con, TEAM_DAILY_SPEND)
    try:
        yield Ledger(con)
    finally:
        con.close()
