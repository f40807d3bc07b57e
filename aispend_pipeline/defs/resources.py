"""Resources, configured from the environment with `EnvVar` (values resolve at run time, never stored).

A source is enabled when its credential variable is set; an unset optional variable falls back to
the default, so a fresh machine runs with no configuration at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from aispend_pipeline.settings import DEFAULT_DUCKDB_MEMORY_LIMIT, DEFAULT_DUCKDB_PATH, DEFAULT_SEEDS_DIR, env_or
from aispend_pipeline.sources.registry import SOURCES
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse
from aispend_pipeline.warehouse.publish import publishing


class WarehouseResource(DuckDBResource):
    """The analyst DuckDB file (`AISPEND_DUCKDB_PATH`): the one place storage is chosen.

    Built on dagster-duckdb's `DuckDBResource` (`get_connection()` as Dagster users know it). A run
    writes through `publishing()`, which builds the run's result aside and swaps it in at the end;
    `reader()` reads the published file read-only, never blocking or blocked by a run.
    """

    database: str = DEFAULT_DUCKDB_PATH
    # DuckDB's own cap while a run builds (beyond it, DuckDB spills to `<file>.tmp`): a year's backfill of a
    # large organisation stays within a small machine's memory (`AISPEND_DUCKDB_MEMORY_LIMIT`).
    memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT

    @contextlib.contextmanager
    def publishing(self, run_id: str) -> Iterator[DuckDBWarehouse]:
        config = {"memory_limit": self.memory_limit, **(self.connection_config or {})}
        with publishing(self.database, run_id, config) as warehouse:
            yield warehouse

    def reader(self) -> DuckDBWarehouse:
        return DuckDBWarehouse(self.database, read_only=True)

    @property
    def path(self) -> Path:
        return Path(self.database)


class SeedsResource(dg.ConfigurableResource):
    """The seed files directory (`AISPEND_SEEDS_DIR`)."""

    seeds_dir: str = DEFAULT_SEEDS_DIR

    @property
    def path(self) -> Path:
        return Path(self.seeds_dir).resolve()


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """The warehouse, the seeds directory and one resource per registered source."""
    return {
        "warehouse": WarehouseResource(
            database=env_or("AISPEND_DUCKDB_PATH", DEFAULT_DUCKDB_PATH),
            memory_limit=env_or("AISPEND_DUCKDB_MEMORY_LIMIT", DEFAULT_DUCKDB_MEMORY_LIMIT),
        ),
        "seeds": SeedsResource(seeds_dir=env_or("AISPEND_SEEDS_DIR", DEFAULT_SEEDS_DIR)),
        **{source.resource_key: source.build_resource() for source in SOURCES},
    }
