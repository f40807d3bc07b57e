"""Every run says where its time went: seconds per step in the metadata and one log line for benchmarks."""

from __future__ import annotations

import json
from datetime import date

import dagster as dg

from aispend_pipeline.cli import materialize
from aispend_pipeline.defs.run import TIMINGS_PREFIX

DAY = date(2026, 11, 2)


def test_a_run_logs_seconds_per_layer_and_puts_each_steps_seconds_in_its_metadata(pipeline):
    ok, reason = materialize(DAY, DAY, log_level="ERROR")  # the persistent instance (the fixture's DAGSTER_HOME)
    assert ok, reason
    instance = dg.DagsterInstance.get()
    run = instance.get_runs(limit=1)[0]
    lines = [e.user_message for e in instance.all_logs(run.run_id) if e.user_message.startswith(TIMINGS_PREFIX)]
    assert len(lines) == 1
    timings = json.loads(lines[0].removeprefix(TIMINGS_PREFIX))
    for layer in ("pull", "fetch:openai", "validate_raw:openai", "store_raw", "line_items", "cost_line_items"):
        assert timings[layer] >= 0, layer
    steps = sum(v for k, v in timings.items() if k not in ("total", "pull", "publish") and ":" not in k)
    assert timings["total"] >= steps + timings["pull"] - 0.01  # the parts lie within the whole
    for key in (["staging", "line_items"], ["cost_line_items"], ["raw", "openai_costs"]):
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        assert event is not None and event.asset_materialization is not None
        assert event.asset_materialization.metadata["seconds"].value >= 0, key
