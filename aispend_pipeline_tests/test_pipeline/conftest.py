"""A pipeline pointed at the simulators, with its own DuckDB file and seeds in a temporary directory."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from aispend_pipeline.cli import materialize
from aispend_pipeline.simulators import RunningSimulators
from aispend_pipeline.sources.registry import SOURCES
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

REPO_SEEDS = Path(__file__).resolve().parents[2] / "seeds"
# Cleared first, so only the simulators' settings enable sources: every source's own, from the registry.
SOURCE_SETTINGS = (
    *(name for source in SOURCES for name in source.enabled_by),
    "DAGSTER_HOME",
    "AISPEND_RESTATEMENT_DAYS",
)


@dataclass
class Pipeline:
    sims: RunningSimulators
    db: DuckDBWarehouse
    seeds_dir: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def writer(self) -> DuckDBWarehouse:
        """A read-write connection to the published file (to tamper with it between runs)."""
        return DuckDBWarehouse(self.db.path)

    def run(self, first: date, last: date) -> tuple[bool, str]:
        """`aispend materialize` for first..last, on the test's own persistent instance (`DAGSTER_HOME` in
        its tmp folder, the package's dagster.yaml), as users run it: its batched event log is also far
        faster than the in-memory one, which stores events one by one."""
        return materialize(first, last, log_level="ERROR")

    def write_seed(self, name: str, text: str) -> None:
        (self.seeds_dir / name).write_text(text.strip() + "\n")

    def table_state(self, table: str, key: str, first: date, last: date) -> tuple[int, object, list[str]]:
        """(rows, exact total, sorted keys) of a table over first..last inclusive."""
        rows = self.db.rows(
            f"SELECT {key}, cost_usd FROM {table} WHERE usage_date BETWEEN $first AND $last",
            {"first": first, "last": last},
        )
        return len(rows), sum(r[1] for r in rows), sorted(str(r[0]) for r in rows)


@pytest.fixture
def pipeline(tmp_path: Path, sims: RunningSimulators, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    for name in SOURCE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    seeds_dir = tmp_path / "seeds"
    shutil.copytree(REPO_SEEDS, seeds_dir)
    for name, value in sims.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AISPEND_DUCKDB_PATH", str(tmp_path / "data" / "aispend.duckdb"))
    monkeypatch.setenv("AISPEND_SEEDS_DIR", str(seeds_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    yield Pipeline(sims, DuckDBWarehouse(tmp_path / "data" / "aispend.duckdb", read_only=True), seeds_dir, monkeypatch)
