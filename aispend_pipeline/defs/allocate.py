"""`cost_line_items`: line items attributed to teams by the org mapping, in the analyst schema."""

from decimal import Decimal
from pathlib import Path

import dagster as dg
from dagster import AssetExecutionContext

from aispend_pipeline.allocation.org_mapping import allocation_sql
from aispend_pipeline.defs.asset_defaults import DAILY_ASSET
from aispend_pipeline.defs.metadata import range_metadata, stored_summary, table_metadata, usd
from aispend_pipeline.defs.partitions import partition_dates
from aispend_pipeline.reconciliation import unbalanced_allocations
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS, UNALLOCATED_TEAM
from aispend_pipeline.settings import DEFAULT_UNALLOCATED_WARN_SHARE, unallocated_warn_share

KEY = dg.AssetKey(["cost_line_items"])
LINES_CHECK = "matches_line_items"
UNALLOCATED_CHECK = "unallocated_share"


@dg.asset(
    key=KEY,
    description=COST_LINE_ITEMS.description,
    group_name="allocate",
    deps=[dg.AssetKey(["staging", "line_items"])],
    kinds={"sql", "duckdb"},
    **DAILY_ASSET,
    tags={"layer": "marts"},
    code_version="1",
    required_resource_keys={"warehouse", "seeds"},
    check_specs=[
        dg.AssetCheckSpec(
            LINES_CHECK,
            asset=KEY,
            blocking=True,
            description="Every line item is attributed once: per line, attributed shares sum to its cost.",
        ),
        dg.AssetCheckSpec(
            UNALLOCATED_CHECK,
            asset=KEY,
            description=(
                "Warns when more than AISPEND_UNALLOCATED_WARN_SHARE "
                f"(default {DEFAULT_UNALLOCATED_WARN_SHARE:.0%}) of spend has no team."
            ),
        ),
    ],
)
def cost_line_items(context: AssetExecutionContext) -> dg.MaterializeResult:
    start, end = partition_dates(context)
    warehouse = context.resources.warehouse.warehouse()
    seeds_dir = Path(context.resources.seeds.seeds_dir).resolve()
    if not seeds_dir.is_dir():
        context.log.warning(
            f"seeds directory {seeds_dir} does not exist: no mapping rules, so every line is 'unallocated'; "
            "set AISPEND_SEEDS_DIR"
        )
    rule_count = context.resources.seeds.load_org_mapping(warehouse)
    warehouse.replace_range_from_sql(COST_LINE_ITEMS, allocation_sql(), start, end)
    rows, total = stored_summary(warehouse, COST_LINE_ITEMS, start, end)
    params = {"start": start, "end": end}
    unallocated = Decimal(
        warehouse.rows(
            f"SELECT coalesce(sum(cost_usd), 0) FROM {COST_LINE_ITEMS.qualified_name} "
            f"WHERE usage_date >= $start AND usage_date < $end AND team = '{UNALLOCATED_TEAM}'",
            params,
        )[0][0]
    )
    share = (unallocated / total) if total else Decimal(0)
    unbalanced = unbalanced_allocations(warehouse, start, end)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "total_usd": usd(total),
            "unallocated_usd": usd(unallocated),
            "unallocated_share": dg.MetadataValue.text(f"{share:.4%}"),
            "org_mapping_rules": rule_count,
            "seeds_dir": dg.MetadataValue.path(str(seeds_dir)),
            **range_metadata(start, end),
            **table_metadata(warehouse, COST_LINE_ITEMS, start, end, top_teams=True),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=LINES_CHECK,
                passed=not unbalanced,
                metadata={"unbalanced_lines": len(unbalanced), "first": str(unbalanced[:3])},
            ),
            dg.AssetCheckResult(
                check_name=UNALLOCATED_CHECK,
                passed=share <= unallocated_warn_share(),
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"unallocated_usd": usd(unallocated), "share": dg.MetadataValue.text(f"{share:.4%}")},
            ),
        ],
    )
