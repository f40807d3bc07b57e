"""Bad input fails with a message a user can act on, loses nothing, and never leaks a credential."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg

from aispend_pipeline.cli import main, materialize
from aispend_pipeline.sources.openai.simulator import PATH as OPENAI_COSTS
from aispend_pipeline.sources.openai.simulator import USAGE_PATH as OPENAI_USAGE

DAYS = (date(2026, 10, 1), date(2026, 10, 5))
WRONG_KEY = "sk-admin-WRONG-0123456789abcdef"


def files_containing(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def state(pipeline) -> dict[str, tuple]:
    return {
        table: pipeline.table_state(table, key, *DAYS)
        for table, key in (
            ("staging.line_items", "line_id"),
            ("main.cost_line_items", "cost_line_id"),
            ("main.team_daily_spend", "team || provider || usage_date"),
        )
    }


def test_rejected_key_names_the_setting_and_leaks_nowhere(pipeline, tmp_path, monkeypatch, capfd):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("OPENAI_ADMIN_KEY", WRONG_KEY)

    exit_code = main(["materialize", "--start", str(DAYS[0]), "--end", str(DAYS[1])])

    captured = capfd.readouterr()
    assert exit_code == 1
    error_lines = [line for line in captured.err.splitlines() if line.startswith("aispend:")]
    assert len(error_lines) == 1
    assert "openai" in error_lines[0] and "401" in error_lines[0] and "OPENAI_ADMIN_KEY" in error_lines[0]
    assert WRONG_KEY not in captured.out + captured.err
    assert files_containing(tmp_path, WRONG_KEY) == []


def test_working_keys_never_reach_run_storage_or_the_duckdb_file(pipeline, tmp_path, monkeypatch, capfd):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    assert main(["materialize", "--start", str(DAYS[0]), "--end", str(DAYS[1])]) == 0
    captured = capfd.readouterr()
    for key in (pipeline.sims.env["OPENAI_ADMIN_KEY"], pipeline.sims.env["ANTHROPIC_ADMIN_KEY"]):
        assert key not in captured.out + captured.err
        assert files_containing(tmp_path, key) == []
    assert any(dagster_home.rglob("*.db")), "the run was recorded in the instance's storage"


def test_malformed_payload_fails_naming_source_day_field_and_keeps_last_good_data(pipeline):
    assert pipeline.run(*DAYS)[0]
    before = state(pipeline)
    bad_page = {
        "object": "page",
        "has_more": False,
        "next_page": None,
        "data": [
            {
                "object": "bucket",
                "start_time": 1791072000,  # 2026-10-04T00:00:00Z
                "end_time": 1791158400,
                "results": [{"object": "organization.costs.result", "amount": {"value": "12,50", "currency": "usd"}}],
            }
        ],
    }
    pipeline.sims.openai.fail_next(200, body=json.dumps(bad_page))

    ok, reason = pipeline.run(*DAYS)

    assert not ok
    assert reason.startswith("openai 2026-10-04: field 'amount.value'")
    assert state(pipeline) == before


def test_rate_limit_is_retried_after_the_providers_delay(pipeline):
    pipeline.sims.openai.fail_next(429, headers={"Retry-After": "0"})
    ok, reason = pipeline.run(*DAYS)
    assert ok, reason
    assert pipeline.sims.openai.request_count(OPENAI_COSTS) == 2, "the 429, then the answer"
    assert pipeline.sims.openai.request_count(OPENAI_USAGE) == 1


def test_a_source_without_credentials_materialises_empty_and_the_run_succeeds(pipeline, tmp_path, monkeypatch):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.delenv("ANTHROPIC_ADMIN_KEY")

    ok, reason = materialize(*DAYS, log_level="ERROR")  # the persistent instance at DAGSTER_HOME

    assert ok, reason
    assert pipeline.sims.anthropic.request_count() == 0
    assert pipeline.db.rows("SELECT count(*) FROM raw.anthropic_costs") == [(0,)]
    assert pipeline.db.rows("SELECT count(*) FROM main.cost_line_items WHERE provider = 'openai'")[0][0] > 0
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["raw", "anthropic_costs"]))
    assert event is not None
    status = event.asset_materialization.metadata["status"].value
    assert status == "not configured: set ANTHROPIC_ADMIN_KEY to enable this source"


def test_cli_rejects_impossible_ranges_with_one_line(capsys):
    assert main(["materialize", "--start", "2026-10-05", "--end", "2026-10-01"]) == 2
    assert capsys.readouterr().err.strip() == "aispend: --start 2026-10-05 is after --end 2026-10-01"
    assert main(["materialize", "--start", "2023-12-31", "--end", "2024-01-01"]) == 2
    assert "before the first daily partition (2024-01-01)" in capsys.readouterr().err
    assert main(["materialize", "--start", "2026-10-01", "--end", "2999-01-01"]) == 2
    assert "is not a completed UTC day yet" in capsys.readouterr().err


def test_a_mistyped_seeds_directory_runs_nothing_and_keeps_the_mapping(pipeline, monkeypatch, capsys):
    from aispend_pipeline.cli import main

    assert pipeline.run(*DAYS)[0]
    before = state(pipeline)
    monkeypatch.setenv("AISPEND_SEEDS_DIR", str(pipeline.seeds_dir) + "-typo")

    code = main(["materialize", "--start", str(DAYS[0]), "--end", str(DAYS[1])])

    err = capsys.readouterr().err
    assert code == 2 and "AISPEND_SEEDS_DIR" in err and "-typo does not exist" in err
    assert len(err.strip().splitlines()) == 1
    assert state(pipeline) == before
    assert pipeline.sims.openai.request_count(OPENAI_COSTS) == 1, "only the first run called the API"


def test_keys_in_dot_env_are_read_by_the_command_line(pipeline, monkeypatch, tmp_path, capsys):
    from aispend_pipeline.cli import main

    key = pipeline.sims.env["ANTHROPIC_ADMIN_KEY"]
    monkeypatch.delenv("ANTHROPIC_ADMIN_KEY")
    (tmp_path / ".env").write_text(f"ANTHROPIC_ADMIN_KEY={key}\n")
    monkeypatch.chdir(tmp_path)

    assert main(["materialize", "--start", str(DAYS[0]), "--end", str(DAYS[1])]) == 0
    assert pipeline.sims.anthropic.request_count() >= 1
