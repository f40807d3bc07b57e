"""The last assets of a run: the source inventory and the analyst report (logic in marts/ and report/)."""

from datetime import timedelta

import dagster as dg
from dagster import AssetExecutionContext

from aispend_pipeline.defs.allocate import KEY as COST_LINE_ITEMS_KEY
from aispend_pipeline.defs.asset_defaults import DAILY_ASSET
from aispend_pipeline.defs.marts import ROLLUP_KEY
from aispend_pipeline.defs.metadata import preview_markdown, usd
from aispend_pipeline.defs.partitions import partition_dates
from aispend_pipeline.marts.source_inventory import SOURCE_INVENTORY, build_source_inventory
from aispend_pipeline.report import REPORT_DAYS, write_report
from aispend_pipeline.settings import report_path
from aispend_pipeline.sources.registry import SOURCES

INVENTORY_KEY = dg.AssetKey(["source_inventory"])
REPORT_KEY = dg.AssetKey(["analyst_report"])


@dg.asset(
    key=INVENTORY_KEY,
    description=SOURCE_INVENTORY.description,
    group_name="marts",
    deps=[COST_LINE_ITEMS_KEY],
    kinds={"sql", "duckdb"},
    **DAILY_ASSET,
    tags={"layer": "marts"},
    code_version="1",
    required_resource_keys={"warehouse", *(s.resource_key for s in SOURCES)},
)
def source_inventory(context: AssetExecutionContext) -> dg.MaterializeResult:
    """As of the run's last day; configured flags come from each source's resource (its settings)."""
    _, end = partition_dates(context)
    as_of = end - timedelta(days=1)
    configured = {s.name: getattr(context.resources, s.resource_key).is_configured for s in SOURCES}
    with context.resources.warehouse.warehouse().connect() as con:
        summary = build_source_inventory(con, as_of, configured)
        preview = preview_markdown(
            con,
            "SELECT provider, billing_model, configured, how_ingested, last_data_date, spend_30d_usd, coverage_gap "
            f"FROM {SOURCE_INVENTORY.qualified_name}",
            limit=summary.rows,
        )
    gaps = "\n".join(f"- **{provider}**: {gap}" for provider, gap in summary.gaps) or "none"
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": summary.rows,
            "as_of": dg.MetadataValue.text(str(as_of)),
            "spend_30d_usd": usd(summary.spend_30d_usd),
            "coverage_gaps": dg.MetadataValue.md(gaps),
            "gap_count": len(summary.gaps),
            "preview": preview,
        }
    )


@dg.asset(
    key=REPORT_KEY,
    description=(
        f"The static HTML report of the {REPORT_DAYS} days ending the run's last day (aispend-report.html beside "
        "the DuckDB file, or AISPEND_REPORT_PATH): spend by team, provider and model, week over week, anomalies, "
        "unallocated keys, coverage gaps."
    ),
    group_name="marts",
    deps=[ROLLUP_KEY, INVENTORY_KEY],
    kinds={"html", "plotly"},
    **DAILY_ASSET,
    tags={"layer": "report"},
    code_version="1",
    required_resource_keys={"warehouse"},
)
def analyst_report(context: AssetExecutionContext) -> dg.MaterializeResult:
    _, end = partition_dates(context)
    warehouse = context.resources.warehouse.warehouse()
    with warehouse.connect() as con:
        path = write_report(con, report_path(warehouse.path), end - timedelta(days=1)).resolve()
    context.log.info(f"report written to {path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "size_bytes": path.stat().st_size,
            "as_of": dg.MetadataValue.text(str(end - timedelta(days=1))),
        }
    )
