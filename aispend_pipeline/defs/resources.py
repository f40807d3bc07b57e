"""Resources, configured from the environment with `EnvVar` (values resolve at run time, never stored).

A source is enabled when its credential variable is set; an unset optional variable falls back to
the default, so a fresh machine runs with no configuration at all.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from aispend_pipeline.allocation.org_mapping import ORG_MAPPING, rules_frame
from aispend_pipeline.seed_files import read_org_mapping
from aispend_pipeline.settings import DEFAULT_DUCKDB_PATH, DEFAULT_SEEDS_DIR, env_or
from aispend_pipeline.sources.registry import SOURCES
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse


class WarehouseResource(dg.ConfigurableResource):
    """The analyst DuckDB file (`AISPEND_DUCKDB_PATH`). The one place storage is chosen."""

    duckdb_path: str = DEFAULT_DUCKDB_PATH

    def warehouse(self) -> DuckDBWarehouse:
        return DuckDBWarehouse(self.duckdb_path)


class SeedsResource(dg.ConfigurableResource):
    """The seed files directory (`AISPEND_SEEDS_DIR`)."""

    seeds_dir: str = DEFAULT_SEEDS_DIR

    def load_org_mapping(self, warehouse: DuckDBWarehouse) -> int:
        """Parse org_mapping.csv (errors name file, line, field) and snapshot it into the warehouse."""
        rules = read_org_mapping(Path(self.seeds_dir))
        warehouse.replace_table(ORG_MAPPING, rules_frame(rules))
        return len(rules)


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """The warehouse, the seeds directory and one resource per registered source."""
    return {
        "warehouse": WarehouseResource(duckdb_path=env_or("AISPEND_DUCKDB_PATH", DEFAULT_DUCKDB_PATH)),
        "seeds": SeedsResource(seeds_dir=env_or("AISPEND_SEEDS_DIR", DEFAULT_SEEDS_DIR)),
        **{source.resource_key: source.build_resource() for source in SOURCES},
    }
