"""One publish per run: readers see a run whole or not at all, a failing source or check never leaves a mix,
invoices are written by whole months, and a process killed mid-run loses nothing."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd

from aispend_pipeline.defs import marts
from aispend_pipeline.defs.ingest import SourcePull, freshness, store_pull
from aispend_pipeline.defs.normalise import normalised_frame
from aispend_pipeline.sources.base import RawPull
from aispend_pipeline.sources.openai.source import SOURCE as OPENAI
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse
from aispend_pipeline.warehouse.publish import BUILDING_SUFFIX, run_lock
from aispend_pipeline.warehouse.staging import SCHEMA as STAGING_SCHEMA
from aispend_pipeline.warehouse.staging import Staging

DAYS = (date(2026, 10, 1), date(2026, 10, 5))
OCTOBER = (date(2026, 10, 1), date(2026, 10, 31))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def team_totals(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, Decimal]:
    return dict(con.execute(f"SELECT team, sum(cost_usd) FROM {table} GROUP BY team").fetchall())


def provider_day_total(pipeline, provider: str, day: date, table: str = "main.cost_line_items") -> Decimal:
    return pipeline.db.rows(
        f"SELECT coalesce(sum(cost_usd), 0) FROM {table} WHERE provider = $p AND usage_date = $d",
        {"p": provider, "d": day},
    )[0][0]


def test_a_failing_source_keeps_its_days_while_the_others_go_through_every_layer(pipeline):
    pipeline.monkeypatch.delenv("ANTHROPIC_ADMIN_KEY")
    assert pipeline.run(*DAYS)[0]
    openai_lines = "SELECT cost_line_id, cost_usd, team FROM main.cost_line_items WHERE provider = 'openai' ORDER BY 1"
    openai_before = pipeline.db.rows(openai_lines)
    assert provider_day_total(pipeline, "anthropic", DAYS[0]) == 0

    pipeline.monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", pipeline.sims.env["ANTHROPIC_ADMIN_KEY"])
    pipeline.monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-revoked-000000000000")
    ok, reason = pipeline.run(*DAYS)

    assert not ok
    assert reason.startswith("openai") and "401" in reason and "OPENAI_ADMIN_KEY" in reason
    assert "other source(s) published" in reason
    schemas = {row[0] for row in pipeline.db.rows("SELECT schema_name FROM information_schema.schemata")}
    assert STAGING_SCHEMA not in schemas, "staged pulls (the failed one's included) are never published"
    for day in (DAYS[0], DAYS[1]):
        expected = pipeline.sims.expected_total_usd("anthropic", day)
        assert provider_day_total(pipeline, "anthropic", day) == expected
        assert provider_day_total(pipeline, "anthropic", day, "main.team_daily_spend") == expected
    assert pipeline.db.rows(openai_lines) == openai_before and openai_before


def test_a_reader_polling_during_a_run_always_sees_one_consistent_state(pipeline):
    assert pipeline.run(*DAYS)[0]
    # Re-attribute a project so that the next run changes every table.
    text = (pipeline.seeds_dir / "org_mapping.csv").read_text().replace("proj_search,search", "proj_search,growth")
    (pipeline.seeds_dir / "org_mapping.csv").write_text(text)
    seen: list[dict[str, Decimal]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                with duckdb.connect(str(pipeline.db.path), read_only=True) as con:
                    lines = team_totals(con, "main.cost_line_items")
                    rollup = team_totals(con, "main.team_daily_spend")
                assert lines == rollup, "cost_line_items and team_daily_spend from different runs"
                seen.append(lines)
            except BaseException as exc:
                errors.append(exc)
            time.sleep(0.01)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        ok, reason = pipeline.run(*DAYS)
    finally:
        stop.set()
        reader.join()
    assert ok, reason
    assert errors == []
    assert len(seen) >= 5
    states = {tuple(sorted(s.items())) for s in seen}
    assert 1 <= len(states) <= 2  # the state before the run, then the state after it: never a mix
    assert seen[-1].get("search", Decimal(0)) < seen[0].get("search", Decimal(0))


def test_a_file_held_read_write_by_another_process_fails_the_run_at_once(pipeline):
    assert pipeline.run(*DAYS)[0]
    before = digest(pipeline.db.path)
    marker = pipeline.db.path.with_name("holder-has-it")
    hold = (
        "import duckdb, pathlib, time\n"
        f"c = duckdb.connect({str(pipeline.db.path)!r})\n"
        f"pathlib.Path({str(marker)!r}).touch()\n"
        "time.sleep(120)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold])
    try:
        for _ in range(1200):  # wait (up to a minute on a busy machine) until the other process has the file
            if marker.exists() or holder.poll() is not None:
                break
            time.sleep(0.05)
        assert marker.exists(), "the holder process never opened the file"
        ok, reason = pipeline.run(*DAYS)
    finally:
        holder.kill()
        holder.wait()
    assert not ok
    assert "held read-write by another process" in reason and "read_only=True" in reason
    assert digest(pipeline.db.path) == before


def test_a_second_run_on_the_same_file_is_refused(pipeline):
    assert pipeline.run(*DAYS)[0]
    with run_lock(pipeline.db.path):
        ok, reason = pipeline.run(*DAYS)
    assert not ok
    assert "another aispend run" in reason and str(pipeline.db.path) in reason


def test_a_failing_blocking_check_publishes_nothing(pipeline):
    assert pipeline.run(*DAYS)[0]
    before = digest(pipeline.db.path)
    doubled = (
        "SELECT usage_date, team, provider, cost_usd * 2 AS cost_usd, usage_cost_usd, line_count "
        f"FROM ({marts.TEAM_DAILY_SPEND_SQL})"
    )
    pipeline.monkeypatch.setattr(marts, "TEAM_DAILY_SPEND_SQL", doubled)

    ok, reason = pipeline.run(*DAYS)

    assert not ok
    assert reason.startswith("blocking check reconciles_with_cost_line_items on team_daily_spend failed")
    assert "nothing was published" in reason
    assert digest(pipeline.db.path) == before
    assert not list(pipeline.db.path.parent.glob(f"*{BUILDING_SUFFIX}*"))


def test_an_invoice_for_a_vendor_with_an_api_source_reconciles(pipeline):
    invoices = (pipeline.seeds_dir / "manual_invoices.csv").read_text().rstrip("\n")
    invoices += "\nOpenAI,ChatGPT Enterprise seats,2026-10,3100.00,USD,support,CC-220,Purchase,100 seats\n"
    (pipeline.seeds_dir / "manual_invoices.csv").write_text(invoices)

    ok, reason = pipeline.run(*DAYS)

    assert ok, reason
    api = pipeline.sims.expected_total_usd("openai", DAYS[0])
    assert provider_day_total(pipeline, "openai", DAYS[0]) == api + Decimal("100.00")


def test_a_corrected_invoice_rewrites_its_whole_month_from_a_four_day_run(pipeline):
    assert pipeline.run(*OCTOBER)[0]
    seed = pipeline.seeds_dir / "manual_invoices.csv"
    seed.write_text(seed.read_text().replace("2026-10,2480.00", "2026-10,2511.00"))

    ok, reason = pipeline.run(date(2026, 10, 28), date(2026, 10, 31))

    assert ok, reason
    month = pipeline.db.rows(
        "SELECT sum(cost_usd), count(DISTINCT usage_date) FROM main.cost_line_items "
        "WHERE provider = 'cursor' AND usage_date BETWEEN '2026-10-01' AND '2026-10-31'"
    )[0]
    assert month == (Decimal("2511.00"), 31)
    assert provider_day_total(pipeline, "cursor", date(2026, 10, 1)) == Decimal("81.00")


def test_line_ids_stay_distinct_when_key_values_contain_the_old_separator(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    day = date(2026, 10, 1)
    frame = pd.DataFrame(
        {
            "usage_date": [pd.Timestamp(day)] * 2,
            "project_id": ["a|b", "a"],
            "line_item": ["c", "b|c"],
            "amount_usd": ["1.00", "2.00"],
            "quantity": [None, None],
            "quantity_unit": [None, None],
            "line_ordinal": [0, 0],
        }
    )
    warehouse.replace_days(OPENAI.raw_table, frame, [day])
    ids = normalised_frame(warehouse, OPENAI, day, day + timedelta(days=1))["line_id"]
    assert ids.nunique() == 2


def test_rounding_per_day_is_in_the_metadata_and_the_total_check_uses_the_replaced_days(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb", connection=duckdb.connect(str(tmp_path / "w.duckdb")))
    day, older = date(2026, 10, 2), date(2026, 10, 1)
    stored = pd.DataFrame(
        {"usage_date": [pd.Timestamp(older)], "project_id": ["p"], "line_item": ["x"], "amount_usd": ["5"]}
        | {"quantity": [None], "quantity_unit": [None], "line_ordinal": [0]}
    )
    warehouse.replace_days(OPENAI.raw_table, stored, [older])
    frame = stored.assign(usage_date=pd.Timestamp(day), amount_usd="0.3")
    pull = RawPull(None, 1, frozenset({day}), {day: Decimal("4E-17")})
    staging = Staging(warehouse.connection, "openai", [OPENAI.raw_table])
    staging.append(OPENAI.raw_table, frame, None)
    loaded = SourcePull(OPENAI, "loaded", pull=pull, staging=staging, staged_rows=staging.finish())

    outcome = store_pull(warehouse, loaded, older, day + timedelta(days=1))

    assert outcome.metadata["rounding_usd"].value == "0.00000000000000004"
    assert "| 2026-10-02 |" in outcome.metadata["rounding_by_day"].md_str
    assert [c.passed for c in outcome.checks if c.name == "stored_total_matches_source"] == [True]
    assert warehouse.rows("SELECT sum(amount_usd) FROM raw.openai_costs")[0][0] == Decimal("5.3")


def test_freshness_allows_36_hours_for_daily_sources(tmp_path):
    from datetime import UTC, datetime

    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    frame = pd.DataFrame(
        {"usage_date": [pd.Timestamp("2026-10-01")], "project_id": ["p"], "line_item": ["x"], "amount_usd": ["1"]}
        | {"quantity": [None], "quantity_unit": [None], "line_ordinal": [0]}
    )
    warehouse.replace_days(OPENAI.raw_table, frame, [date(2026, 10, 1)])
    data_end = datetime(2026, 10, 2, tzinfo=UTC)
    assert freshness(warehouse, OPENAI, data_end + timedelta(hours=35)).passed
    stale = freshness(warehouse, OPENAI, data_end + timedelta(hours=37))
    assert not stale.passed and stale.warn and stale.metadata["last_data_date"] == "2026-10-01"


def test_a_process_killed_mid_run_leaves_every_table_as_before_and_the_next_run_repairs(pipeline):
    assert pipeline.run(*OCTOBER)[0]
    before = digest(pipeline.db.path)
    seed = pipeline.seeds_dir / "manual_invoices.csv"
    seed.write_text(seed.read_text().replace("2026-10,2480.00", "2026-10,2511.00"))
    command = [
        str(Path(sys.executable).with_name("aispend")),
        "materialize",
        "--start",
        "2026-10-01",
        "--end",
        "2026-10-31",
    ]
    kills = 0
    for delay in (0.0, 0.2, 0.5):  # after the working copy appears: while the run writes it
        process = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if list(pipeline.db.path.parent.glob(f"*{BUILDING_SUFFIX}*")):
                time.sleep(delay)
                break
            time.sleep(0.005)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        if digest(pipeline.db.path) != before:  # the run had already published: it is the new state, whole
            break
        with duckdb.connect(str(pipeline.db.path), read_only=True) as con:
            assert team_totals(con, "main.cost_line_items") == team_totals(con, "main.team_daily_spend")
    assert kills >= 1

    ok, reason = pipeline.run(*OCTOBER)

    assert ok, reason
    assert not list(pipeline.db.path.parent.glob(f"*{BUILDING_SUFFIX}*"))
    for day in (date(2026, 10, 1), date(2026, 10, 31)):
        assert provider_day_total(pipeline, "openai", day) == pipeline.sims.expected_total_usd("openai", day)
    cursor = pipeline.db.rows(
        "SELECT sum(cost_usd) FROM main.cost_line_items WHERE provider = 'cursor' AND usage_date >= '2026-10-01'"
        " AND usage_date <= '2026-10-31'"
    )[0][0]
    assert cursor == Decimal("2511.00")
