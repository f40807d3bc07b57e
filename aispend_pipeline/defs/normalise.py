"""`staging/line_items`: every source's raw rows in the one line-item schema, pandera-validated.

Each source's normalise SQL runs inside DuckDB; the union is validated against the line-item schema
before it is written to the run's copy, so a bad row fails the run, names source, day and field, and
nothing is published. Blocking checks: per provider and day the line items total exactly what the raw
tables hold, and every line id is unique.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import pandas as pd

from aispend_pipeline.defs.metadata import range_metadata, stored_summary, table_metadata, usd
from aispend_pipeline.defs.outcome import CheckOutcome, StepOutcome
from aispend_pipeline.reconciliation import duplicate_keys, raw_vs_line_items
from aispend_pipeline.schemas.line_items import LINE_ITEMS
from aispend_pipeline.schemas.validation import validate
from aispend_pipeline.sources.base import Source
from aispend_pipeline.sources.registry import SOURCES
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

KEY = dg.AssetKey(["staging", "line_items"])
RAW_CHECK = "matches_raw_totals"
UNIQUE_CHECK = "unique_line_ids"


def normalised_frame(warehouse: DuckDBWarehouse, source: Source, start: date, end: date) -> pd.DataFrame:
    """One source's line items for [start, end), decimals as exact text (validated with the others)."""
    params = {"start": start, "end": end}
    present = set(warehouse.columns_of(source.normalise_sql, params))
    return warehouse.frame(LINE_ITEMS.exact_select(source.normalise_sql, present), params)


def build_line_items(warehouse: DuckDBWarehouse, start: date, end: date) -> StepOutcome:
    """Replace days [start, end) of staging.line_items from every source's raw table."""
    warehouse.ensure_tables([s.raw_table for s in SOURCES])
    frames = [normalised_frame(warehouse, source, start, end) for source in SOURCES]
    combined = validate(LINE_ITEMS, pd.concat(frames, ignore_index=True), "line_items")
    warehouse.replace_range(LINE_ITEMS, combined, start, end)
    rows, total = stored_summary(warehouse, LINE_ITEMS, start, end)
    mismatches = raw_vs_line_items(warehouse, start, end)
    duplicates = duplicate_keys(warehouse, LINE_ITEMS, start, end)
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
                UNIQUE_CHECK,
                not duplicates,
                {"duplicate_line_ids": len(duplicates), "first": str(duplicates[:3])},
                blocking=True,
            ),
        ],
    )
