"""The Dagster code location: `aispend_pipeline.definitions:defs`."""

import dagster as dg

from aispend_pipeline.defs.anomalies import alert_delivery_sensor
from aispend_pipeline.defs.resources import build_resources
from aispend_pipeline.defs.run import aispend_run
from aispend_pipeline.defs.schedules import daily_job, daily_schedule


def build_definitions() -> dg.Definitions:
    """Definitions with resources read from the current environment (sources enabled by their keys)."""
    return dg.Definitions(
        assets=[aispend_run],
        jobs=[daily_job],
        schedules=[daily_schedule],
        sensors=[alert_delivery_sensor],
        resources=build_resources(),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
