"""The Dagster code location: `aispend_pipeline.definitions:defs`."""

import dagster as dg

from aispend_pipeline.defs.allocate import cost_line_items
from aispend_pipeline.defs.anomalies import alert_delivery_sensor, spend_anomalies
from aispend_pipeline.defs.marts import focus_cost_and_usage, team_daily_spend
from aispend_pipeline.defs.normalise import RAW_ASSETS, line_items
from aispend_pipeline.defs.resources import build_resources
from aispend_pipeline.defs.schedules import daily_job, daily_schedule


def build_definitions() -> dg.Definitions:
    """Definitions with resources read from the current environment (sources enabled by their keys)."""
    return dg.Definitions(
        assets=[*RAW_ASSETS, line_items, cost_line_items, team_daily_spend, focus_cost_and_usage, spend_anomalies],
        jobs=[daily_job],
        schedules=[daily_schedule],
        sensors=[alert_delivery_sensor],
        resources=build_resources(),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
