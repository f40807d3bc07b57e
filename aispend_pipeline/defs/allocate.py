"""`cost_line_items`: line items attributed to teams by the org mapping, in the analyst schema.

Blocking checks: every line is attributed once (split lines sum to it exactly) and every invoice month
the run touched equals its invoice to the cent. A warning when too much spend has no team.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg

from aispend_pipeline.allocation.org_mapping import ORG_MAPPING, allocation_sql, rules_frame
from aispend_pipeline.defs.metadata import range_metadata, stored_summary, table_metadata, usd
from aispend_pipeline.defs.outcome import CheckOutcome, StepOutcome
from aispend_pipeline.reconciliation import duplicate_keys, invoice_month_mismatches, unbalanced_allocations
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS, UNALLOCATED_TEAM
from aispend_pipeline.seed_files import read_manual_invoices, read_org_mapping
from aispend_pipeline.settings import DEFAULT_UNALLOCATED_WARN_SHARE, unallocated_warn_share
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

KEY = dg.AssetKey(["cost_line_items"])
LINES_CHECK = "matches_line_items"
UNIQUE_CHECK = "unique_cost_line_ids"
INVOICE_CHECK = "invoice_months_match_invoices"
UNALLOCATED_CHECK = "unallocated_share"
UNALLOCATED_DESCRIPTION = (
    f"Warns when more than AISPEND_UNALLOCATED_WARN_SHARE (default {DEFAULT_UNALLOCATED_WARN_SHARE:.0%}) "
    "of spend has no team."
)


def build_cost_line_items(
    warehouse: DuckDBWarehouse, seeds_dir: Path, start: date, end: date, last_day: date
) -> StepOutcome:
    """Snapshot the org mapping into the run's copy and attribute days [start, end) of line items."""
    rules = read_org_mapping(seeds_dir)
    warehouse.replace_table(ORG_MAPPING, rules_frame(rules))
    warehouse.replace_range_from_sql(COST_LINE_ITEMS, allocation_sql({r.dimension for r in rules}), start, end)
    rows, total = stored_summary(warehouse, COST_LINE_ITEMS, start, end)
    unallocated = Decimal(
        warehouse.rows(
            f"SELECT coalesce(sum(cost_usd), 0) FROM {COST_LINE_ITEMS.qualified_name} "
            f"WHERE usage_date >= $start AND usage_date < $end AND team = '{UNALLOCATED_TEAM}'",
            {"start": start, "end": end},
        )[0][0]
    )
    share = (unallocated / total) if total else Decimal(0)
    unbalanced = unbalanced_allocations(warehouse, start, end)
    duplicates = duplicate_keys(warehouse, COST_LINE_ITEMS, start, end)
    invoices = invoice_month_mismatches(warehouse, read_manual_invoices(seeds_dir), start, end)
    return StepOutcome(
        KEY,
        {
            "dagster/row_count": rows,
            "total_usd": usd(total),
            "unallocated_usd": usd(unallocated),
            "unallocated_share": dg.MetadataValue.text(f"{share:.4%}"),
            "org_mapping_rules": len(rules),
            "seeds_dir": dg.MetadataValue.path(str(seeds_dir)),
            **range_metadata(start, end),
            **table_metadata(warehouse, COST_LINE_ITEMS, start, end, top_day=last_day),
        },
        [
            CheckOutcome(
                LINES_CHECK,
                not unbalanced,
                {"unbalanced_lines": len(unbalanced), "first": str(unbalanced[:3])},
                blocking=True,
            ),
            CheckOutcome(
                UNIQUE_CHECK,
                not duplicates,
                {"duplicate_ids": len(duplicates), "first": str(duplicates[:3])},
                blocking=True,
            ),
            CheckOutcome(
                INVOICE_CHECK,
                not invoices,
                {"mismatched_invoice_months": len(invoices), "first": str(invoices[:3])},
                blocking=True,
            ),
            CheckOutcome(
                UNALLOCATED_CHECK,
                share <= unallocated_warn_share(),
                {"unallocated_usd": usd(unallocated), "share": dg.MetadataValue.text(f"{share:.4%}")},
                warn=True,
            ),
        ],
    )
