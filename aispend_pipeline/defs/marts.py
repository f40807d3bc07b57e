"""Analyst marts: `team_daily_spend` (rollup) and `focus_cost_and_usage` (FOCUS view)."""

from __future__ import annotations

from datetime import date

import dagster as dg

from aispend_pipeline.defs.metadata import preview_markdown, range_metadata, stored_summary, table_metadata, usd
from aispend_pipeline.defs.outcome import CheckOutcome, StepOutcome
from aispend_pipeline.marts.focus import focus_select_sql, focus_view_sql
from aispend_pipeline.marts.team_daily_spend import TEAM_DAILY_SPEND_SQL
from aispend_pipeline.reconciliation import rollup_mismatches
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS, TEAM_DAILY_SPEND
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

ROLLUP_KEY = dg.AssetKey(["team_daily_spend"])
FOCUS_KEY = dg.AssetKey(["focus_cost_and_usage"])
RECONCILE_CHECK = "reconciles_with_cost_line_items"


def build_team_daily_spend(warehouse: DuckDBWarehouse, start: date, end: date, last_day: date) -> StepOutcome:
    """Replace days [start, end) of the rollup; blocking check: it equals cost_line_items exactly."""
    warehouse.replace_range_from_sql(TEAM_DAILY_SPEND, TEAM_DAILY_SPEND_SQL, start, end)
    rows, total = stored_summary(warehouse, TEAM_DAILY_SPEND, start, end)
    _, lines_total = stored_summary(warehouse, COST_LINE_ITEMS, start, end)
    mismatches = rollup_mismatches(warehouse, start, end)
    return StepOutcome(
        ROLLUP_KEY,
        {
            "dagster/row_count": rows,
            "total_usd": usd(total),
            **range_metadata(start, end),
            **table_metadata(warehouse, TEAM_DAILY_SPEND, start, end, top_day=last_day),
        },
        [
            CheckOutcome(
                RECONCILE_CHECK,
                not mismatches and total == lines_total,
                {
                    "rollup_total_usd": usd(total),
                    "cost_line_items_total_usd": usd(lines_total),
                    "mismatched_rows": len(mismatches),
                    "first": str(mismatches[:3]),
                },
                blocking=True,
            )
        ],
    )


def build_focus_view(warehouse: DuckDBWarehouse, start: date, end: date) -> StepOutcome:
    """(Re)create the FOCUS view over cost_line_items and report the range's rows and billed cost.

    The figures come from the view's own SELECT filtered on `usage_date`, so that DuckDB skips the
    other days' row groups (a filter on the view's `ChargePeriodStart` reads every row of the table).
    """
    warehouse.ensure_tables([COST_LINE_ITEMS])
    warehouse.execute(focus_view_sql())
    in_range = focus_select_sql("WHERE usage_date >= $start AND usage_date < $end")
    params = {"start": start, "end": end}
    rows, total = warehouse.rows(f"SELECT count(*), coalesce(sum(BilledCost), 0) FROM ({in_range})", params)[0]
    with warehouse.connect() as con:
        preview = preview_markdown(
            con,
            "SELECT ChargePeriodStart, ProviderName, ServiceName, x_Model, x_Team, ChargeCategory, BilledCost "
            f"FROM ({in_range}) ORDER BY ChargePeriodStart DESC, BilledCost DESC",
            params,
        )
    metadata = {"dagster/row_count": rows, "billed_cost_usd": usd(total), **range_metadata(start, end)}
    return StepOutcome(FOCUS_KEY, {**metadata, "preview": preview})
