"""The last parts of a run: the source inventory (in the run's copy) and the analyst report (after publishing).

The logic lives in marts/source_inventory.py and report/; these functions say what the UI shows.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg

from aispend_pipeline.defs.metadata import preview_markdown, usd
from aispend_pipeline.defs.outcome import StepOutcome
from aispend_pipeline.marts.source_inventory import SOURCE_INVENTORY, build_source_inventory
from aispend_pipeline.report import REPORT_DAYS, write_report
from aispend_pipeline.settings import report_path
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

INVENTORY_KEY = dg.AssetKey(["source_inventory"])
REPORT_KEY = dg.AssetKey(["analyst_report"])
REPORT_DESCRIPTION = (
    f"The static HTML report of the {REPORT_DAYS} days ending the run's last day (aispend-report.html beside "
    "the DuckDB file, or AISPEND_REPORT_PATH): spend by team, provider and model, week over week, anomalies, "
    "unallocated keys, coverage gaps."
)


def build_inventory(warehouse: DuckDBWarehouse, as_of: date, configured: dict[str, bool]) -> StepOutcome:
    """Every source the product knows, as of the run's last day; configured flags from the sources' settings."""
    with warehouse.connect() as con:
        summary = build_source_inventory(con, as_of, configured)
        preview = preview_markdown(
            con,
            "SELECT provider, billing_model, configured, how_ingested, last_data_date, spend_30d_usd, coverage_gap "
            f"FROM {SOURCE_INVENTORY.qualified_name}",
            limit=summary.rows,
        )
    gaps = "\n".join(f"- **{provider}**: {gap}" for provider, gap in summary.gaps) or "none"
    return StepOutcome(
        INVENTORY_KEY,
        {
            "dagster/row_count": summary.rows,
            "as_of": dg.MetadataValue.text(str(as_of)),
            "spend_30d_usd": usd(summary.spend_30d_usd),
            "coverage_gaps": dg.MetadataValue.md(gaps),
            "gap_count": len(summary.gaps),
            "preview": preview,
        },
    )


def write_analyst_report(building: DuckDBWarehouse, database: Path, as_of: date) -> StepOutcome:
    """The HTML report beside the analyst file, from the run's copy once its checks have passed."""
    with building.connect() as con:
        path: Path = write_report(con, report_path(database), as_of).resolve()
    return StepOutcome(
        REPORT_KEY,
        {
            "path": dg.MetadataValue.path(str(path)),
            "size_bytes": path.stat().st_size,
            "as_of": dg.MetadataValue.text(str(as_of)),
        },
    )
