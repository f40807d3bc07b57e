"""`staging/line_items`: every source's raw rows in the one line-item schema, validated in SQL.

Each source's normalise SQL runs inside DuckDB; the union is checked against the line-item schema's
rules on the relation itself (`schemas.validation.validate_stored`: no row goes through pandas) before
it is written to the run's copy, so a bad row fails the run, names source, day and field, and
nothing is published. Blocking checks: per provider and day the line items total exactly what the raw
tables hold, and every line id is unique (a rule of the schema, so a repeated id has already failed the
run with its days named; the check records that it held, without grouping the ids a second time).
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import pandas as pd

from aispend_pipeline.defs.metadata import range_metadata, stored_summary, table_metadata, usd
from aispend_pipeline.defs.outcome import CheckOutcome, StepOutcome
from aispend_pipeline.reconciliation import raw_vs_line_items
from aispend_pipeline.schemas.line_items import LINE_ITEMS
from aispend_pipeline.sources.base import Source
from aispend_pipeline.sources.registry import SOURCES
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

KEY = dg.AssetKey(["staging", "line_items"])
RAW_CHECK = "matches_raw_totals"
UNIQUE_CHECK = "unique_line_ids"


def normalised_select(warehouse: DuckDBWarehouse, source: Source) -> str:
    """One source's line items for [$start, $end) in the line-item columns (absent ones NULL)."""
    present = set(warehouse.columns_of(source.normalise_sql, {"start": date.min, "end": date.min}))
    return LINE_ITEMS.exact_select(source.normalise_sql, present, for_pandas=False)


def normalised_frame(warehouse: DuckDBWarehouse, source: Source, start: date, end: date) -> pd.DataFrame:
    """One source's line items for [start, end), decimals as exact text (for tests and inspection)."""
    present = set(warehouse.columns_of(source.normalise_sql, {"start": start, "end": end}))
    return warehouse.frame(LINE_ITEMS.exact_select(source.normalise_sql, present), {"start": start, "end": end})


def build_line_items(warehouse: DuckDBWarehouse, start: date, end: date) -> StepOutcome:
    """Replace days [start, end) of staging.line_items from every source's raw table, checked in SQL."""
    warehouse.ensure_tables([s.raw_table for s in SOURCES])
    union = "\nUNION ALL\n".join(normalised_select(warehouse, source) for source in SOURCES)
    warehouse.replace_range_checked(LINE_ITEMS, union, {"start": start, "end": end}, start, end, "line_items")
    rows, total = stored_summary(warehouse, LINE_ITEMS, start, end)
    mismatches = raw_vs_line_items(warehouse, start, end)
    return StepOutcome(
        KEY,
        {
            "dagster/row_count": rows,
            "total_usd": usd(total),
            **table_metadata(warehouse, LINE_ITEMS, start, end),
            **range_metadata(start, end),
        },
        [
            CheckOutcome(
                RAW_CHECK,
                not mismatches,
                {"mismatched_provider_days": len(mismatches), "first": str(mismatches[:3])},
                blocking=True,
            ),
            CheckOutcome(
                UNIQUE_CHECK, True, {"duplicate_line_ids": 0, "checked_by": "the line-item rules"}, blocking=True
            ),
        ],
    )
