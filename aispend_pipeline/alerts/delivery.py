"""Deliver alerts to a Slack-compatible incoming webhook, each identity once, recorded in `main.alert_log`.

The ledger lives in the same DuckDB connection as the run's tables, so it is published with the run. An
identity already sent is never sent again; a failed post is recorded (status `failed`, the scrubbed
error, the attempts) and tried again by the next run or the `alert_delivery_sensor`; it never raises, so
a broken webhook never fails the data assets. Without a webhook, alerts are still recorded (status
`not_sent: no webhook`) for the UI and the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import duckdb

from aispend_pipeline.alerts.pending import Alert
from aispend_pipeline.anomalies.build import atomically
from aispend_pipeline.core.http import ApiClient, short_text
from aispend_pipeline.core.money import round_to_cent
from aispend_pipeline.core.secrets import MASK, scrub
from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.warehouse.duckdb import _ensure

STATUS_SENT, STATUS_FAILED, STATUS_NO_WEBHOOK = "sent", "failed", "not_sent: no webhook"
WEBHOOK_SETTING = "AISPEND_ALERT_WEBHOOK_URL"
# Retries within one post (the shared ApiClient loop); failures after them wait for the next run.
WEBHOOK_HTTP_OPTIONS: dict[str, Any] = {"max_retries": 3, "backoff_seconds": 1.0, "max_backoff_seconds": 10.0}

ALERT_LOG = Table(
    "main",
    "alert_log",
    (
        Column("identity", nullable=False, description="anomaly|team|provider|first day, threshold|team|provider|day"),
        Column("kind", nullable=False, allowed=("anomaly", "threshold")),
        Column("team", nullable=False),
        Column("provider", nullable=False),
        Column("alert_day", "DATE", nullable=False, description="First day of the run, or the breached day."),
        Column("last_day", "DATE", nullable=False),
        Column("actual_usd", DECIMAL),
        Column("expected_usd", DECIMAL, description="The baseline (anomaly) or the daily limit (threshold)."),
        Column("message", nullable=False, description="The alert's text as sent."),
        Column("status", nullable=False, description="sent, failed (retried next run), not_sent: no webhook."),
        Column("attempts", "INTEGER", nullable=False, description="Posts tried (each with its own retries)."),
        Column("first_recorded_at", "TIMESTAMP", nullable=False, description="UTC."),
        Column("first_sent_at", "TIMESTAMP", description="UTC; NULL until delivered."),
        Column("last_attempt_at", "TIMESTAMP", description="UTC."),
        Column("last_error", description="Why the last post failed (scrubbed: never the webhook URL)."),
    ),
    description="Every alert raised, once per identity, with its delivery status.",
    date_column="alert_day",
    unique_key=("identity",),
)


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    not_sent: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)


def slack_message(alert: Alert) -> dict[str, Any]:
    """Slack incoming-webhook JSON: `text` (notifications, plain clients) and Block Kit `blocks`."""
    lines = "\n".join(f"• {label}: ${round_to_cent(cost):,}" for label, cost in alert.top_lines) or "• (no lines)"
    return {
        "text": f"{alert.title}. {alert.summary}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": alert.summary}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*Team*\n{alert.team}"},
                    {"type": "mrkdwn", "text": f"*Provider*\n{alert.provider}"},
                    {"type": "mrkdwn", "text": f"*Day*\n{alert.day}"},
                    {"type": "mrkdwn", "text": f"*Actual vs expected*\n{_versus(alert)}"},
                ],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Top lines on {alert.peak_day}*\n{lines}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"aispend-pipeline · {alert.identity}"}]},
        ],
    }


def _versus(alert: Alert) -> str:
    expected = "—" if alert.expected_usd is None else f"${round_to_cent(alert.expected_usd):,}"
    return f"${round_to_cent(alert.actual_usd):,} vs {expected}"


def deliver(
    con: duckdb.DuckDBPyConnection,
    alerts: Sequence[Alert],
    webhook_url: str | None,
    *,
    http_options: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> DeliveryReport:
    """Post each alert not yet sent, and record the outcome in main.alert_log. Never raises for a post."""
    _ensure(con, ALERT_LOG)
    moment = (now or datetime.now(UTC)).replace(tzinfo=None)
    report = DeliveryReport()
    api = None
    if webhook_url:
        options = {**WEBHOOK_HTTP_OPTIONS, **(http_options or {})}
        api = ApiClient("alert webhook", webhook_url, {}, WEBHOOK_SETTING, **options)
    for alert in alerts:
        previous = con.execute(
            f"SELECT status, attempts FROM {ALERT_LOG.qualified_name} WHERE identity = $identity",
            {"identity": alert.identity},
        ).fetchone()
        if previous and previous[0] == STATUS_SENT:
            report.already_sent.append(alert.identity)
            continue
        attempts = previous[1] if previous else 0
        if api is None or not webhook_url:
            if not previous:
                _record(con, alert, STATUS_NO_WEBHOOK, attempts, moment, None, None)
            report.not_sent.append(alert.identity)
            continue
        error = _post(api, webhook_url, alert)
        if error is None:
            _record(con, alert, STATUS_SENT, attempts + 1, moment, moment, None)
            report.sent.append(alert.identity)
        else:
            _record(con, alert, STATUS_FAILED, attempts + 1, moment, None, error)
            report.failed.append((alert.identity, error))
    return report


def _post(api: ApiClient, webhook_url: str, alert: Alert) -> str | None:
    """None when the webhook accepted the message, else why not (scrubbed, one line)."""
    try:
        response, tries = api.send("POST", webhook_url, json_body=slack_message(alert))
    except Exception as exc:  # a broken webhook must never fail the run: record it, retry next run
        return _redact(f"{type(exc).__name__}: {exc}", webhook_url)
    if 200 <= response.status_code < 300:
        return None
    body = short_text(response.text or response.reason or "")
    return _redact(f"the webhook answered {response.status_code} after {tries} attempts ({body})", webhook_url)


def _redact(text: str, webhook_url: str) -> str:
    """No part of the webhook URL that carries its secret (the path of a Slack hook) survives."""
    path = urlsplit(webhook_url).path
    for secret in (webhook_url, webhook_url.split("?", 1)[0], path if len(path) > 1 else ""):
        if secret:
            text = text.replace(secret, MASK)
    return short_text(scrub(text))


def _record(
    con: duckdb.DuckDBPyConnection,
    alert: Alert,
    status: str,
    attempts: int,
    moment: datetime,
    sent_at: datetime | None,
    error: str | None,
) -> None:
    """Insert or update the identity's row, keeping when it was first recorded."""
    table = ALERT_LOG.qualified_name
    with atomically(con):
        first = con.execute(
            f"SELECT first_recorded_at FROM {table} WHERE identity = $identity", {"identity": alert.identity}
        ).fetchone()
        con.execute(f"DELETE FROM {table} WHERE identity = $identity", {"identity": alert.identity})
        con.execute(
            f"INSERT INTO {table} ({', '.join(ALERT_LOG.column_names)}) VALUES "
            "($identity, $kind, $team, $provider, $day, $last_day, $actual, $expected, $message, $status, $attempts, "
            "$first_recorded, $sent_at, $attempted_at, $error)",
            {
                "identity": alert.identity,
                "kind": alert.kind,
                "team": alert.team,
                "provider": alert.provider,
                "day": alert.day,
                "last_day": alert.last_day,
                "actual": alert.actual_usd,
                "expected": alert.expected_usd,
                "message": f"{alert.title}. {alert.summary}",
                "status": status,
                "attempts": attempts,
                "first_recorded": first[0] if first else moment,
                "sent_at": sent_at,
                "attempted_at": moment if status != STATUS_NO_WEBHOOK else None,
                "error": error,
            },
        )
