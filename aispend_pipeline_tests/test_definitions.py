"""The code location loads, every asset is documented for the UI, and the schedule asks for the right days."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg

from aispend_pipeline.definitions import build_definitions
from aispend_pipeline.defs.schedules import daily_schedule
from aispend_pipeline.sources.anthropic.simulator import PATH as ANTHROPIC_COSTS
from aispend_pipeline.sources.anthropic.simulator import USAGE_PATH as ANTHROPIC_USAGE
from aispend_pipeline.sources.openai.simulator import PATH as OPENAI_COSTS
from aispend_pipeline.sources.openai.simulator import USAGE_PATH as OPENAI_USAGE
from aispend_pipeline.sources.registry import SOURCES

EXPECTED_ASSETS = {
    *(f"{s.raw_table.schema}/{s.raw_table.name}" for s in SOURCES),
    "staging/line_items",
    "cost_line_items",
    "team_daily_spend",
    "focus_cost_and_usage",
    "source_inventory",
    "analyst_report",
    "spend_anomalies",
    "unit_costs",
}


def test_every_asset_is_partitioned_documented_owned_and_kinded():
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == EXPECTED_ASSETS
    assert {sensor.name for sensor in defs.sensors} == {"alert_delivery_sensor"}
    for spec in defs.resolve_all_asset_specs():
        name = spec.key.to_user_string()
        assert spec.description, name
        assert spec.owners == ["team:finops"], name
        assert spec.kinds, name
        assert spec.group_name in {"ingest", "normalise", "allocate", "marts"}, name
        assert isinstance(spec.partitions_def, dg.DailyPartitionsDefinition), name
    assert {c.name for c in graph.asset_check_keys} >= {
        "stored_total_matches_source",
        "matches_raw_totals",
        "matches_line_items",
        "unallocated_share",
        "reconciles_with_cost_line_items",
    }


def test_schedule_runs_yesterday_and_the_restatement_window_as_one_run(monkeypatch):
    monkeypatch.setenv("AISPEND_RESTATEMENT_DAYS", "3")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 2, 6, tzinfo=UTC))
    request = daily_schedule(context)
    assert request.tags["dagster/asset_partition_range_start"] == str(date(2026, 10, 29))
    assert request.tags["dagster/asset_partition_range_end"] == str(date(2026, 11, 1))
    assert daily_schedule.cron_schedule == "0 6 * * *"
    assert daily_schedule.default_status == dg.DefaultScheduleStatus.RUNNING  # runs as soon as the daemon does


def test_dagster_cli_materialises_a_partition_range_as_one_run(tmp_path, sims):
    """The documented `dagster asset materialize ... --partition-range A...B` works (single-run backfill)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "DAGSTER_HOME"))},
        **sims.env,
        "AISPEND_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "AISPEND_SEEDS_DIR": str(Path(__file__).resolve().parents[1] / "seeds"),
    }
    completed = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "asset",
            "materialize",
            "-m",
            "aispend_pipeline.definitions",
            "--select",
            "*",
            "--partition-range",
            "2026-10-01...2026-10-03",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stderr.count("RUN_START") == 1
    pairs = ((sims.openai, (OPENAI_COSTS, OPENAI_USAGE)), (sims.anthropic, (ANTHROPIC_COSTS, ANTHROPIC_USAGE)))
    for sim, paths in pairs:
        assert [sim.request_count(path) for path in paths] == [1, 1], "one cost and one usage request"


def test_workspace_yaml_loads_the_code_location(tmp_path):
    """What `dagster dev` loads from the repo root: workspace.yaml -> aispend_pipeline.definitions."""
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", "workspace.yaml"],
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "aispend_pipeline" in completed.stdout + completed.stderr
