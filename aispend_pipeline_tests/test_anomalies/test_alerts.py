"""Alerts: raised near the newest day, posted to a webhook on 127.0.0.1 once per identity, failures recorded."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from werkzeug import Request, Response

from aispend_pipeline.alerts.delivery import STATUS_FAILED, STATUS_NO_WEBHOOK, STATUS_SENT, deliver
from aispend_pipeline.alerts.pending import pending_alerts
from aispend_pipeline.anomalies.build import build_spend_anomalies
from aispend_pipeline.errors import SeedError
from aispend_pipeline.seed_files import ALERT_THRESHOLDS_FILE, read_alert_thresholds

from .crafted import START, steady

HOOK_PATH = "/services/T0001/B0001/hooksecret123"
FAST = {"max_retries": 2, "backoff_seconds": 0}
DAYS = 60
NEWEST = START + timedelta(days=DAYS - 1)


class Receiver:
    """A Slack-like incoming webhook on 127.0.0.1 that can be told to fail."""

    def __init__(self, httpserver) -> None:
        self.server = httpserver
        self.failing = False
        self.messages: list[dict] = []
        self.requests = 0
        httpserver.expect_request(HOOK_PATH, method="POST").respond_with_handler(self.handle)

    @property
    def url(self) -> str:
        return self.server.url_for(HOOK_PATH)

    def handle(self, request: Request) -> Response:
        self.requests += 1
        if self.failing:
            return Response(f"internal error at {HOOK_PATH}", status=500)
        self.messages.append(json.loads(request.get_data()))
        return Response("ok", status=200, content_type="text/plain")


@pytest.fixture
def receiver(httpserver) -> Receiver:
    return Receiver(httpserver)


def spiky(ledger, spike_days=(DAYS - 2,)) -> None:
    values = steady(DAYS, 100.0)
    for day in spike_days:
        values[day] *= 5
    ledger.lines("support", "openai", values, model="gpt-4o")
    ledger.lines("support", "openai", steady(DAYS, 20.0, seed=3), model="gpt-4o-mini")
    build_spend_anomalies(ledger.con, START, NEWEST + timedelta(days=1))


def run_alerts(ledger, url: str | None, lookback: int = 3, thresholds=()):
    alerts = pending_alerts(ledger.con, NEWEST, lookback, thresholds)
    return alerts, deliver(ledger.con, alerts, url, http_options=FAST)


def log(ledger) -> list[tuple]:
    return ledger.con.execute(
        "SELECT identity, status, attempts, last_error, first_sent_at IS NOT NULL FROM main.alert_log ORDER BY 1"
    ).fetchall()


def test_each_alert_is_received_once_across_repeated_runs(ledger, receiver):
    spiky(ledger)
    for _ in range(3):
        build_spend_anomalies(ledger.con, NEWEST - timedelta(days=3), NEWEST + timedelta(days=1))
        alerts, report = run_alerts(ledger, receiver.url)
    assert receiver.requests == 1 and len(receiver.messages) == 1
    assert report.already_sent == [alerts[0].identity]
    spike_day = NEWEST - timedelta(days=1)
    assert alerts[0].identity == f"anomaly|support|openai|{spike_day}"
    message = receiver.messages[0]
    assert {"text", "blocks"} <= set(message)
    for needed in ("support", "openai", str(spike_day), "expected", "5."):
        assert needed in message["text"]
    body = json.dumps(message["blocks"])
    assert "gpt-4o / proj_support" in body and "gpt-4o-mini / proj_support" in body, "top lines name model and project"
    assert body.index("gpt-4o / proj_support") < body.index("gpt-4o-mini / proj_support"), "largest first"
    assert log(ledger) == [(alerts[0].identity, STATUS_SENT, 1, None, True)]


def test_a_failing_receiver_is_retried_recorded_and_delivered_by_the_next_run(ledger, receiver):
    spiky(ledger)
    receiver.failing = True
    alerts, report = run_alerts(ledger, receiver.url)  # never raises
    assert receiver.requests == 1 + FAST["max_retries"]
    assert [identity for identity, _ in report.failed] == [alerts[0].identity]
    [(identity, status, attempts, error, sent)] = log(ledger)
    assert (status, attempts, sent) == (STATUS_FAILED, 1, False)
    assert "500" in error and "hooksecret123" not in error and "T0001" not in error

    receiver.failing = False
    _, report = run_alerts(ledger, receiver.url)
    assert report.sent == [identity] and len(receiver.messages) == 1
    assert log(ledger) == [(identity, STATUS_SENT, 2, None, True)]


def test_an_unreachable_webhook_is_recorded_without_its_url(ledger):
    spiky(ledger)
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    _, report = run_alerts(ledger, f"http://127.0.0.1:{port}{HOOK_PATH}")
    [(_, status, _, error, _)] = log(ledger)
    assert status == STATUS_FAILED and len(report.failed) == 1
    assert "hooksecret123" not in error and "could not reach" in error


def test_without_a_webhook_alerts_are_recorded_and_sent_once_one_is_set(ledger, receiver):
    spiky(ledger)
    alerts, report = run_alerts(ledger, None)
    assert report.not_sent == [alerts[0].identity]
    assert log(ledger) == [(alerts[0].identity, STATUS_NO_WEBHOOK, 0, None, False)]
    run_alerts(ledger, None)
    assert len(log(ledger)) == 1
    run_alerts(ledger, receiver.url)
    assert log(ledger)[0][1] == STATUS_SENT and len(receiver.messages) == 1


def test_the_lookback_limits_a_backfill_to_recent_days(ledger, receiver):
    spiky(ledger, spike_days=(30, 45, DAYS - 2))
    flagged = ledger.anomalies()["is_anomaly"].sum()
    assert flagged == 3
    alerts, _ = run_alerts(ledger, receiver.url, lookback=3)
    assert [a.day for a in alerts] == [NEWEST - timedelta(days=1)]
    alerts, _ = run_alerts(ledger, receiver.url, lookback=20)
    assert [a.day for a in alerts] == [START + timedelta(days=45), NEWEST - timedelta(days=1)]
    assert len(receiver.messages) == 2


def test_a_run_of_days_is_one_alert_identified_by_its_first_day(ledger, receiver):
    spiky(ledger, spike_days=(DAYS - 3, DAYS - 2, DAYS - 1))
    alerts, _ = run_alerts(ledger, receiver.url)
    assert [(a.day, a.last_day) for a in alerts] == [(NEWEST - timedelta(days=2), NEWEST)]


def write_thresholds(tmp_path: Path, *rows: str) -> Path:
    (tmp_path / ALERT_THRESHOLDS_FILE).write_text("\n".join(["team,provider,daily_limit_usd", *rows]) + "\n")
    return tmp_path


def test_a_threshold_breach_alerts_once_per_day(ledger, receiver, tmp_path):
    ledger.lines("support", "openai", [50.0] * DAYS)
    ledger.lines("support", "anthropic", [40.0] * (DAYS - 1) + [80.0])
    build_spend_anomalies(ledger.con, START, NEWEST + timedelta(days=1))
    thresholds = read_alert_thresholds(write_thresholds(tmp_path, "support,*,100", "support,openai,60"))
    alerts, _ = run_alerts(ledger, receiver.url, thresholds=thresholds)
    assert [a.identity for a in alerts if a.kind == "threshold"] == [f"threshold|support|*|{NEWEST}"]
    [breach] = [m["text"] for m in receiver.messages if "daily limit" in m["text"]]
    assert "130" in breach and "100" in breach and "support" in breach
    sent = len(receiver.messages)
    run_alerts(ledger, receiver.url, thresholds=thresholds)
    assert len(receiver.messages) == sent


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("support,openai,", "daily_limit_usd"),
        ("support,openai,-5", "daily_limit_usd"),
        (",openai,10", "team"),
        ("support,Open AI,10", "provider"),
        ("support,openai,ten", "daily_limit_usd"),
    ],
)
def test_a_bad_threshold_row_names_file_line_and_field(tmp_path, row, field):
    with pytest.raises(SeedError) as error:
        read_alert_thresholds(write_thresholds(tmp_path, "search,*,50", row))
    assert error.value.file == ALERT_THRESHOLDS_FILE and error.value.line == 3 and error.value.field == field


def test_a_repeated_threshold_is_an_error_and_a_missing_file_means_none(tmp_path):
    assert read_alert_thresholds(tmp_path) == []
    with pytest.raises(SeedError, match="line 2"):
        read_alert_thresholds(write_thresholds(tmp_path, "search,*,50", "search,*,60"))


def test_the_sensor_skips_without_a_webhook(monkeypatch, tmp_path):

    from aispend_pipeline.defs.anomalies import alert_delivery_sensor
    from aispend_pipeline_tests.conftest import sensor_context

    monkeypatch.delenv("AISPEND_ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("AISPEND_DUCKDB_PATH", str(tmp_path / "none.duckdb"))
    assert "not set" in alert_delivery_sensor(sensor_context()).skip_message
    monkeypatch.setenv("AISPEND_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    assert "delivered" in alert_delivery_sensor(sensor_context()).skip_message
