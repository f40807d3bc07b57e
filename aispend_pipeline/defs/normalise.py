"""`staging/line_items`: every source's raw rows in the one line-item schema, pandera-validated.

Each source's normalise SQL runs inside DuckDB; the union is validated against the line-item
schema before anything is written, so a bad row fails the asset, names source, day and field, and
leaves the stored line items untouched.
"""

from datetime import date

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from aispend_pipeline.defs.asset_defaults import DAILY_ASSET
from aispend_pipeline.defs.ingest import RAW_ASSETS, raw_asset_key
from aispend_pipeline.defs.metadata import range_metadata, stored_summary, table_metadata, usd
from aispend_pipeline.defs.partitions import partition_dates
from aispend_pipeline.reconciliation import raw_vs_line_items
from aispend_pipeline.schemas.line_items import LINE_ITEMS
from aispend_pipeline.schemas.validation import validate
from aispend_pipeline.sources.base import Source
from aispend_pipeline.sources.registry import SOURCES
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

RAW_CHECK = "matches_raw_totals"


def normalised_frame(warehouse: DuckDBWarehouse, source: Source, start: date, end: date) -> pd.DataFrame:
    """One source's line items for [start, end), decimals as exact text (validated with the others)."""
    params = {"start": start, "end": end}
    present = set(warehouse.columns_of(source.normalise_sql, params))
    return warehouse.frame(LINE_ITEMS.exact_select(source.normalise_sql, present), params)


@dg.asset(
    key=dg.AssetKey(["staging", "line_items"]),
    description=LINE_ITEMS.description,
    group_name="normalise",
    deps=[raw_asset_key(s) for s in SOURCES],
    kinds={"pandas", "duckdb"},
    **DAILY_ASSET,
    tags={"layer": "staging"},
    code_version="1",
    required_resource_keys={"warehouse"},
    check_specs=[
        dg.AssetCheckSpec(
            RAW_CHECK,
            asset=dg.AssetKey(["staging", "line_items"]),
            blocking=True,
            description="Per provider and day, line items total exactly what the raw tables hold.",
        )
    ],
)
def line_items(context: AssetExecutionContext) -> dg.MaterializeResult:
    start, end = partition_dates(context)
    warehouse = context.resources.warehouse.warehouse()
    warehouse.ensure_tables([s.raw_table for s in SOURCES])
    frames = [normalised_frame(warehouse, source, start, end) for source in SOURCES]
    combined = validate(LINE_ITEMS, pd.concat(frames, ignore_index=True), "line_items")
    warehouse.replace_range(LINE_ITEMS, combined, start, end)
    rows, total = stored_summary(warehouse, LINE_ITEMS, start, end)
    mismatches = raw_vs_line_items(warehouse, start, end)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "total_usd": usd(total),
            **table_metadata(warehouse, LINE_ITEMS, start, end),
            **range_metadata(start, end),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=RAW_CHECK,
                passed=not mismatches,
                metadata={"mismatched_provider_days": len(mismatches), "first": str(mismatches[:3])},
            )
        ],
    )


__all__ = ["RAW_ASSETS", "line_items"]
