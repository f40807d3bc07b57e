"""`spend_anomalies` and alert delivery: a thin Dagster layer over `anomalies/` and `alerts/`.

The asset scores the run's days from the stored rollup, then raises and delivers the alerts of the days
near the run's newest day, all in the run's DuckDB connection. A failed webhook post never fails it: the
post is recorded as failed (visible in the asset's metadata and its `alerts_delivered` check) and the
`alert_delivery_sensor` asks for a run of the affected days to try again.
"""

import hashlib
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from aispend_pipeline.alerts.delivery import ALERT_LOG, STATUS_SENT, DeliveryReport, deliver
from aispend_pipeline.alerts.pending import Alert, pending_alerts
from aispend_pipeline.anomalies.build import SPEND_ANOMALIES, build_spend_anomalies
from aispend_pipeline.defs.metadata import preview_markdown, range_metadata
from aispend_pipeline.defs.outcome import CheckOutcome, StepOutcome
from aispend_pipeline.defs.resources import WarehouseResource
from aispend_pipeline.defs.schedules import range_tags
from aispend_pipeline.seed_files import read_alert_thresholds
from aispend_pipeline.settings import (
    alert_lookback_days,
    alert_webhook_url,
    detector_params,
)
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

KEY = dg.AssetKey(["spend_anomalies"])
DELIVERY_CHECK = "alerts_delivered"
MAX_TABLE_ROWS = 25


def _markdown(frame: pd.DataFrame, columns: list[str]) -> dg.MetadataValue:
    if frame.empty:
        return dg.MetadataValue.md("none")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.head(MAX_TABLE_ROWS).iterrows():
        lines.append("| " + " | ".join(str(row[c]).replace("|", "/") for c in columns) + " |")
    if len(frame) > MAX_TABLE_ROWS:
        lines.append(f"\n... and {len(frame) - MAX_TABLE_ROWS} more")
    return dg.MetadataValue.md("\n".join(lines))


def _alerts_table(alerts: list[Alert], report: DeliveryReport) -> dg.MetadataValue:
    status = {i: "sent" for i in report.sent} | {i: "failed" for i, _ in report.failed}
    status |= {i: "not sent: no webhook" for i in report.not_sent} | {i: "sent earlier" for i in report.already_sent}
    frame = pd.DataFrame(
        [{"identity": a.identity, "summary": a.summary, "status": status.get(a.identity, "")} for a in alerts]
    )
    return _markdown(frame, ["identity", "summary", "status"])


DESCRIPTION = (
    SPEND_ANOMALIES.description
    + " Also raises anomaly and threshold alerts and posts them to AISPEND_ALERT_WEBHOOK_URL (main.alert_log)."
)


def build_anomalies(building: DuckDBWarehouse, seeds_dir: Path, start: date, end: date, newest: date) -> StepOutcome:
    """Score [start, end) from the stored rollup, then raise and deliver the alerts near `newest`, in the run's copy.

    Alerts are posted once the blocking checks of the data passed and before the copy is published;
    a post that fails is recorded and retried by the next run (or the sensor), never failing the run.
    """
    params = detector_params()
    thresholds = read_alert_thresholds(seeds_dir)
    with building.connect() as con:
        summary = build_spend_anomalies(con, start, end, params)
        alerts = pending_alerts(con, newest, alert_lookback_days(), thresholds)
        report = deliver(con, alerts, alert_webhook_url())
        preview = preview_markdown(
            con,
            "SELECT usage_date, team, provider, cost_usd, expected_usd, is_anomaly, reason "
            f"FROM {SPEND_ANOMALIES.qualified_name} WHERE usage_date >= $start AND usage_date < $end "
            "ORDER BY is_anomaly DESC, usage_date DESC, cost_usd DESC",
            {"start": start, "end": end},
        )
    flagged = summary.flagged_rows.assign(usage_date=lambda f: pd.to_datetime(f["usage_date"]).dt.date)
    return StepOutcome(
        KEY,
        {
            "dagster/row_count": summary.rows,
            "flagged": summary.flagged,
            "insufficient_history": summary.insufficient_history,
            "flagged_anomalies": _markdown(
                flagged, ["usage_date", "team", "provider", "cost_usd", "expected_usd", "anomaly_type", "reason"]
            ),
            "alerts": _alerts_table(alerts, report),
            "alerts_sent": len(report.sent),
            "alerts_failed": len(report.failed),
            "alerts_not_sent": len(report.not_sent),
            "detector": dg.MetadataValue.json(params.as_dict()),
            **range_metadata(start, end),
            "preview": preview,
        },
        [
            CheckOutcome(
                DELIVERY_CHECK,
                not report.failed,
                {"failed": len(report.failed), "first": str([i for i, _ in report.failed][:3])},
                warn=True,
            )
        ],
    )


def undelivered_alerts(database: Path, lookback_days: int) -> list[tuple[str, date, int]]:
    """(identity, alert day, attempts) of alerts not yet sent whose days are still within the lookback
    of the newest scored day, read from the DuckDB file without writing to it."""
    try:
        con = duckdb.connect(str(database), read_only=True)
    except duckdb.Error:  # a run holds the file, or it does not exist yet: look again next time
        return []
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if not {ALERT_LOG.name, SPEND_ANOMALIES.name} <= tables:
            return []
        newest = con.execute(f"SELECT max(usage_date) FROM {SPEND_ANOMALIES.qualified_name}").fetchone()[0]
        if newest is None:
            return []
        return con.execute(
            f"SELECT identity, last_day, attempts FROM {ALERT_LOG.qualified_name} "
            "WHERE status <> $sent AND last_day >= $since ORDER BY identity",
            {"sent": STATUS_SENT, "since": newest - timedelta(days=lookback_days)},
        ).fetchall()
    finally:
        con.close()


@dg.sensor(
    name="alert_delivery_sensor",
    asset_selection=[KEY],
    minimum_interval_seconds=900,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retries alerts that could not be posted: asks for a run of spend_anomalies for their days.",
)
def alert_delivery_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    if not alert_webhook_url():
        return dg.SkipReason("AISPEND_ALERT_WEBHOOK_URL is not set: alerts are recorded, not posted")
    pending = undelivered_alerts(warehouse.path, alert_lookback_days())
    if not pending:
        return dg.SkipReason("every alert within the lookback has been delivered")
    first = min(day for _, day, _ in pending)
    last = max(day for _, day, _ in pending)
    key = hashlib.sha256("\n".join(f"{i}#{n}" for i, _, n in pending).encode()).hexdigest()[:16]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"alerts-{key}", asset_selection=[KEY], tags=range_tags(first, last))]
    )
