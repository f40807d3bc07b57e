"""Bad input fails with a message a user can act on, loses nothing, and never leaks a credential."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

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
    assert captured.err.strip().splitlines() == error_lines, "stderr is the one-line reason, no traceback"
    assert "openai" in error_lines[0] and "401" in error_lines[0] and "OPENAI_ADMIN_KEY" in error_lines[0]
    assert WRONG_KEY not in captured.out + captured.err
    assert files_containing(tmp_path, WRONG_KEY) == []


def test_verbose_shows_the_log_and_the_traceback_and_still_ends_with_the_reason(pipeline, monkeypatch, capfd):
    monkeypatch.setenv("OPENAI_ADMIN_KEY", WRONG_KEY)

    exit_code = main(["materialize", "--start", str(DAYS[0]), "--end", str(DAYS[1]), "--verbose"])

    err = capfd.readouterr().err.strip().splitlines()
    assert exit_code == 1
    assert any("Stack Trace" in line or "Traceback" in line for line in err)
    assert err[-1].startswith("aispend: materialize") and "401" in err[-1]
    assert WRONG_KEY not in "\n".join(err)


def test_working_keys_never_reach_run_storage_or_the_duckdb_file(pipeline, tmp_path, monkeypatch, capfd):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    assert main(["materialize", "--start", str(DAYS[0]), "--end", str(DAYS[1])]) == 0
    captured = capfd.readouterr()
    env = pipeline.sims.env
    secrets = [v for k, v in env.items() if k.endswith(("_KEY", "_TOKEN", "_SECRET_ACCESS_KEY", "_KEY_ID"))]
    service_account = json.loads(Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())
    secrets += [service_account["private_key_id"], service_account["private_key"].splitlines()[1]]
    assert len(secrets) >= 8, "every source's credential is scanned for"
    for key in secrets:
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


BUCKET = {"object": "bucket", "start_time": 1791072000, "end_time": 1791158400}  # 2026-10-04


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            ("openai", "<html>502 Bad Gateway</html>"),
            "openai: /v1/organization/costs answered 200 with a body that is not",
        ),
        (
            ("openai", {"data": [{**BUCKET, "results": [{"amt": {"value": "1.0", "currency": "usd"}}]}]}),
            "openai 2026-10-04: field 'amount",
        ),
        (
            ("openai", {"data": [{**BUCKET, "results": [{"amount": {"value": "1.0", "currency": "eur"}}]}]}),
            "openai 2026-10-04: field 'amount.currency' is 'eur'",
        ),
        (("openai", {"object": "page", "data": [], "has_more": False, "next_page": None}), "openai: the answer has no"),
        (("org_mapping.csv", "openai,project_id,proj_search,search,,,2026-13-01,"), "org_mapping.csv line 2"),
        (
            ("org_mapping.csv", "openai,project_id,p1,search,,,,\nopenai,project_id,p1,growth,,,2026-01-01,"),
            "org_mapping.csv line 3",
        ),
    ],
    ids=["malformed-json", "renamed-field", "unknown-currency", "empty-page", "bad-seed-row", "overlapping-rules"],
)
def test_bad_input_names_source_or_file_and_loses_nothing(pipeline, fault, expected):
    assert pipeline.run(*DAYS)[0]
    before = state(pipeline)
    where, payload = fault
    if where.endswith(".csv"):
        pipeline.write_seed(where, "provider,dimension,value,team,cost_centre,product,valid_from,valid_to\n" + payload)
    else:
        body = payload if isinstance(payload, str) else json.dumps(payload)
        pipeline.sims[where].fail_next(200, body=body)

    ok, reason = pipeline.run(*DAYS)

    assert not ok
    assert reason.startswith(expected), reason
    assert "\n" not in reason
    assert state(pipeline) == before
