"""End to end through `aispend materialize`: the demo's injected spike is flagged and alerted once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import dagster as dg
import pytest
from werkzeug import Request, Response

from aispend_pipeline.defs.anomalies import alert_delivery_sensor
from aispend_pipeline.simulators import RunningSimulators, start_simulators
from aispend_pipeline_tests.conftest import sensor_context

SPIKE = date(2026, 10, 20)
FIRST, LAST = date(2026, 10, 1), date(2026, 10, 21)
HOOK = "/services/T9/B9/e2esecret"


@pytest.fixture
def sims() -> Iterator[RunningSimulators]:
    with start_simulators(seed=7, spike_day=SPIKE) as running:
        yield running


def test_the_spike_is_flagged_and_its_alert_survives_a_failing_webhook(pipeline, httpserver):
    state = {"failing": True, "requests": 0, "messages": []}

    def handle(request: Request) -> Response:
        state["requests"] += 1
        if state["failing"]:
            return Response("upstream down", status=500, headers={"Retry-After": "0"})
        state["messages"].append(json.loads(request.get_data()))
        return Response("ok")

    httpserver.expect_request(HOOK, method="POST").respond_with_handler(handle)
    pipeline.monkeypatch.setenv("AISPEND_ALERT_WEBHOOK_URL", httpserver.url_for(HOOK))

    ok, reason = pipeline.run(FIRST, LAST)
    assert ok, reason  # a failing webhook never fails the run
    flagged = pipeline.db.rows(
        "SELECT usage_date, team, provider, anomaly_type, reason FROM main.spend_anomalies WHERE is_anomaly"
    )
    assert [row[:4] for row in flagged] == [(SPIKE, "support", "openai", "spike")]
    assert flagged[0][4].split("x the usual")[0].replace(".", "").isdigit()
    assert pipeline.db.rows("SELECT status, attempts FROM main.alert_log") == [("failed", 1)]
    assert state["requests"] > 1, "retried within the post"

    request = alert_delivery_sensor(sensor_context())
    [run] = request.run_requests
    assert run.tags["dagster/asset_partition_range_start"] == str(SPIKE)
    assert run.asset_selection == [dg.AssetKey(["spend_anomalies"])]

    state["failing"] = False
    table = "SELECT * FROM main.spend_anomalies ORDER BY usage_date, team, provider"
    assert pipeline.run(FIRST, LAST)[0]
    once = pipeline.db.rows(table)
    assert pipeline.run(FIRST, LAST)[0]
    assert pipeline.db.rows(table) == once, "re-running changes nothing"
    assert len(state["messages"]) == 1
    text = state["messages"][0]["text"]
    assert text.startswith(f"AI spend anomaly: support on openai. {SPIKE}: $") and "expected" in text
    assert pipeline.db.rows("SELECT status, attempts FROM main.alert_log") == [("sent", 2)]
    assert isinstance(alert_delivery_sensor(sensor_context()), dg.SkipReason)
