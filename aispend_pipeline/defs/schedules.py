"""The daily job and its schedule: every morning, yesterday plus the restatement window, as one run."""

from __future__ import annotations

from datetime import date

import dagster as dg

from aispend_pipeline.defs.partitions import daily_partitions, scheduled_window
from aispend_pipeline.settings import restatement_days

daily_job = dg.define_asset_job(
    "aispend_daily",
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Every asset for a range of days, as one run (the CLI, the schedule and backfills use it).",
)


def range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags that make one run cover the partitions first..last (inclusive)."""
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }


@dg.schedule(
    job=daily_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,  # runs as soon as the daemon does
)
def daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """At 06:00 UTC: yesterday and the AISPEND_RESTATEMENT_DAYS days before it, in one run."""
    first, last = scheduled_window(context.scheduled_execution_time.date(), restatement_days())
    return dg.RunRequest(run_key=f"{first}..{last}", tags=range_tags(first, last))
