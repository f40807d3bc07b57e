"""Daily UTC partitions shared by every asset, and the scheduled window (yesterday + restatements)."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

PARTITIONS_START = "2024-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")
single_run_backfill = dg.BackfillPolicy.single_run()


def partition_dates(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The run's days as [start, end): one day, or a whole backfill range in a single run."""
    window = context.partition_time_window
    return window.start.date(), window.end.date()


def scheduled_window(today: date, restatement_days: int) -> tuple[date, date]:
    """First and last day (inclusive) a scheduled run covers: yesterday and the days before it
    that providers may still restate."""
    yesterday = today - timedelta(days=1)
    return yesterday - timedelta(days=max(restatement_days, 0)), yesterday
