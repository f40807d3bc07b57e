"""Resources, configured from the environment with `EnvVar` (values resolve at run time, never stored).

A source is enabled when its credential variable is set; an unset optional variable falls back to
the default, so a fresh machine runs with no configuration at all.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from aispend_pipeline.allocation.org_mapping import ORG_MAPPING, rules_frame
from aispend_pipeline.seed_files import read_org_mapping
from aispend_pipeline.sources.anthropic import AnthropicResource
from aispend_pipeline.sources.anthropic.client import DEFAULT_BASE_URL as ANTHROPIC_BASE_URL
from aispend_pipeline.sources.manual_invoices import ManualInvoicesResource
from aispend_pipeline.sources.openai import OpenAIResource
from aispend_pipeline.sources.openai.client import DEFAULT_BASE_URL as OPENAI_BASE_URL
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

DEFAULT_DUCKDB_PATH = "data/aispend.duckdb"
DEFAULT_SEEDS_DIR = "seeds"


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


def env_or(name: str, default: str | None = None) -> dg.EnvVar | str | None:
    """`EnvVar(name)` when the variable is set, else the default (None: the source stays disabled)."""
    return dg.EnvVar(name) if dg.EnvVar(name).get_value() else default


def build_resources() -> dict[str, dg.ConfigurableResource]:
    seeds_dir = env_or("AISPEND_SEEDS_DIR", DEFAULT_SEEDS_DIR)
    return {
        "warehouse": WarehouseResource(duckdb_path=env_or("AISPEND_DUCKDB_PATH", DEFAULT_DUCKDB_PATH)),
        "seeds": SeedsResource(seeds_dir=seeds_dir),
        "openai": OpenAIResource(
            admin_key=env_or("OPENAI_ADMIN_KEY"), base_url=env_or("OPENAI_BASE_URL", OPENAI_BASE_URL)
        ),
        "anthropic": AnthropicResource(
            admin_key=env_or("ANTHROPIC_ADMIN_KEY"), base_url=env_or("ANTHROPIC_BASE_URL", ANTHROPIC_BASE_URL)
        ),
        "manual_invoices": ManualInvoicesResource(seeds_dir=seeds_dir),
    }
