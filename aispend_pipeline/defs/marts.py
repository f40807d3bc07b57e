"""Analyst marts: `team_daily_spend` (rollup) and `focus_cost_and_usage` (FOCUS view)."""

import dagster as dg
from dagster import AssetExecutionContext

from aispend_pipeline.defs.allocate import KEY as COST_LINE_ITEMS_KEY
from aispend_pipeline.defs.asset_defaults import DAILY_ASSET
from aispend_pipeline.defs.metadata import preview_markdown, range_metadata, stored_summary, table_metadata, usd
from aispend_pipeline.defs.partitions import partition_dates
from aispend_pipeline.marts.focus import FOCUS_VIEW, focus_view_sql, utc
from aispend_pipeline.marts.team_daily_spend import TEAM_DAILY_SPEND_SQL
from aispend_pipeline.reconciliation import rollup_mismatches
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS, TEAM_DAILY_SPEND

ROLLUP_KEY = dg.AssetKey(["team_daily_spend"])
RECONCILE_CHECK = "reconciles_with_cost_line_items"
COMMON = dict(
    group_name="marts",
    deps=[COST_LINE_ITEMS_KEY],
    **DAILY_ASSET,
    tags={"layer": "marts"},
    code_version="1",
    required_resource_keys={"warehouse"},
)


@dg.asset(
    key=ROLLUP_KEY,
    description=TEAM_DAILY_SPEND.description,
    kinds={"sql", "duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            RECONCILE_CHECK,
            asset=ROLLUP_KEY,
            blocking=True,
            description="Per day, the rollup equals cost_line_items exactly (to the cent and beyond).",
        )
    ],
    **COMMON,
)
def team_daily_spend(context: AssetExecutionContext) -> dg.MaterializeResult:
    start, end = partition_dates(context)
    warehouse = context.resources.warehouse.warehouse()
    warehouse.replace_range_from_sql(TEAM_DAILY_SPEND, TEAM_DAILY_SPEND_SQL, start, end)
    rows, total = stored_summary(warehouse, TEAM_DAILY_SPEND, start, end)
    _, lines_total = stored_summary(warehouse, COST_LINE_ITEMS, start, end)
    mismatches = rollup_mismatches(warehouse, start, end)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "total_usd": usd(total),
            **range_metadata(start, end),
            **table_metadata(warehouse, TEAM_DAILY_SPEND, start, end, top_teams=True),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=RECONCILE_CHECK,
                passed=not mismatches and total == lines_total,
                metadata={
                    "rollup_total_usd": usd(total),
                    "cost_line_items_total_usd": usd(lines_total),
                    "mismatched_rows": len(mismatches),
                    "first": str(mismatches[:3]),
                },
            )
        ],
    )


@dg.asset(
    key=dg.AssetKey(["focus_cost_and_usage"]),
    description="cost_line_items under FOCUS 1.0 column names (custom columns x_*), as a view.",
    kinds={"sql", "duckdb"},
    **COMMON,
)
def focus_cost_and_usage(context: AssetExecutionContext) -> dg.MaterializeResult:
    start, end = partition_dates(context)
    warehouse = context.resources.warehouse.warehouse()
    warehouse.ensure_tables([COST_LINE_ITEMS])
    warehouse.execute(focus_view_sql())
    in_range = f"ChargePeriodStart >= {utc('$start')} AND ChargePeriodStart < {utc('$end')}"
    rows, total = warehouse.rows(
        f"SELECT count(*), coalesce(sum(BilledCost), 0) FROM {FOCUS_VIEW} WHERE {in_range}",
        {"start": start, "end": end},
    )[0]
    with warehouse.connect() as con:
        preview = preview_markdown(
            con,
            "SELECT ChargePeriodStart, ProviderName, ServiceName, x_Model, x_Team, ChargeCategory, BilledCost "
            f"FROM {FOCUS_VIEW} WHERE {in_range} ORDER BY ChargePeriodStart DESC, BilledCost DESC",
            {"start": start, "end": end},
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "billed_cost_usd": usd(total),
            **range_metadata(start, end),
            "preview": preview,
        }
    )
