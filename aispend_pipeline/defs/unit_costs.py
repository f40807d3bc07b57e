"""`unit_costs` in the run: the months the run touched, rebuilt from cost_line_items and the stored usage.

Blocking check: per month, the mart's cost equals the Usage (and seat) charges of cost_line_items exactly,
so unit prices are always computed over the billed cost, never over an estimate.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import dagster as dg

from aispend_pipeline.defs.metadata import preview_markdown, usd
from aispend_pipeline.defs.outcome import CheckOutcome, StepOutcome
from aispend_pipeline.marts.unit_costs import UNIT_COSTS, build_unit_costs, unit_cost_mismatches
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

KEY = dg.AssetKey(["unit_costs"])
RECONCILE_CHECK = "matches_cost_line_items"
DESCRIPTION = UNIT_COSTS.description


def build_unit_costs_step(warehouse: DuckDBWarehouse, start: date, end: date) -> StepOutcome:
    """Rebuild the whole months touched by [start, end) and check them against cost_line_items."""
    with warehouse.connect() as con:
        first, after = build_unit_costs(con, start, end)
        params = {"start": first, "end": after}
        rows, cost, tokens, savings = con.execute(
            "SELECT count(*), coalesce(sum(cost_usd), 0), coalesce(sum(tokens), 0), "
            f"coalesce(sum(cache_read_savings_usd), 0) FROM {UNIT_COSTS.qualified_name} "
            "WHERE month >= $start AND month < $end",
            params,
        ).fetchone() or (0, Decimal(0), Decimal(0), Decimal(0))
        mismatches = unit_cost_mismatches(con, first, after)
        preview = preview_markdown(
            con,
            "SELECT month, team, provider, model, cost_usd, tokens, usd_per_million_tokens, "
            "usd_per_million_input_tokens, usd_per_million_output_tokens, cache_read_savings_usd, active_seats, "
            f"usd_per_active_seat FROM {UNIT_COSTS.qualified_name} WHERE month >= $start AND month < $end "
            "ORDER BY month DESC, cost_usd DESC",
            params,
            limit=10,
        )
    return StepOutcome(
        KEY,
        {
            "dagster/row_count": rows,
            "months": dg.MetadataValue.text(f"{first:%Y-%m} .. {after:%Y-%m} (exclusive)"),
            "cost_usd": usd(cost),
            "tokens": dg.MetadataValue.text(str(int(tokens))),
            "cache_read_savings_usd": usd(savings),
            "preview": preview,
        },
        [
            CheckOutcome(
                RECONCILE_CHECK,
                not mismatches,
                {"mismatched_months": len(mismatches), "first": str(mismatches[:3])},
                blocking=True,
            )
        ],
    )
