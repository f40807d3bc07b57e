"""The GitHub Copilot seats source end to end: recent days exact per day, teams by user and GitHub team,
inactive seats visible, and history kept for days older than the live window."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from decimal import Decimal

import pytest

from aispend_pipeline.core.days import days_between
from aispend_pipeline.simulators.paging import utc_today
from aispend_pipeline.sources.github_copilot.source import live_window_start

YESTERDAY = utc_today() - timedelta(days=1)
FIRST = YESTERDAY - timedelta(days=9)


@pytest.fixture
def copilot_only(pipeline):
    """Only the Copilot source configured (the others materialise empty), with the demo's mapping."""
    for name, sim in pipeline.sims.simulators.items():
        if name != "github_copilot":
            for setting in sim.env:
                pipeline.monkeypatch.delenv(setting, raising=False)
    header = "provider,dimension,value,team,cost_centre,product,valid_from,valid_to"
    rows = [
        ",".join([r["provider"], r["dimension"], r["value"], r["team"], r["cost_centre"], r["product"], "", ""])
        for r in pipeline.sims.github_copilot.demo_mapping_rows()
    ]
    pipeline.write_seed("org_mapping.csv", "\n".join([header, *rows]))
    return pipeline


def per_day(pipeline, table: str = "main.cost_line_items") -> dict[date, Decimal]:
    rows = pipeline.db.rows(
        f"SELECT usage_date, sum(cost_usd) FROM {table} WHERE provider = 'github_copilot' "
        "AND usage_date BETWEEN $first AND $last GROUP BY 1",
        {"first": FIRST, "last": YESTERDAY},
    )
    return dict(rows)


def test_recent_days_match_the_seat_list_exactly_and_a_rerun_changes_nothing(copilot_only) -> None:
    pipeline, sim = copilot_only, copilot_only.sims.github_copilot
    ok, reason = pipeline.run(FIRST, YESTERDAY)
    assert ok, reason

    expected = {day: sim.expected_total_usd(day) for day in days_between(FIRST, YESTERDAY + timedelta(days=1))}
    assert per_day(pipeline) == expected
    assert per_day(pipeline, "main.team_daily_spend") == expected
    assert sim.request_count() == 2, "one billing call and one page of seats for ten days"

    teams = dict(
        pipeline.db.rows(
            "SELECT coalesce(user_name, '(none)'), any_value(team) FROM main.cost_line_items "
            "WHERE provider = 'github_copilot' GROUP BY 1",
            {},
        )
    )
    assert teams["ada"] == "search" and teams["kchen"] == "research", "a user rule beats the GitHub team's"
    assert teams["growth-pm"] == "growth" and teams["(none)"] == "platform"
    assert teams["contractor-x"] == "unallocated"
    kinds = pipeline.db.rows(
        "SELECT DISTINCT charge_category, data_lag, cost_source, unit FROM main.cost_line_items "
        "WHERE provider = 'github_copilot'",
        {},
    )
    assert kinds == [("Purchase", "daily", "estimated", "seat-days")]

    activity = dict(
        pipeline.db.rows(
            "SELECT coalesce(user_name, '(none)'), max(last_activity_date) FROM main.cost_line_items "
            "WHERE provider = 'github_copilot' GROUP BY 1",
            {},
        )
    )
    seats = {seat.login or "(none)": seat.last_activity_at for seat in sim.seats()}
    assert activity == {login: None if at is None else at.astimezone(UTC).date() for login, at in seats.items()}
    assert activity["linus"] is None and activity["dritchie"] < YESTERDAY - timedelta(days=30), "inactive, still paid"

    before = pipeline.table_state("main.cost_line_items", "cost_line_id", FIRST, YESTERDAY)
    ok, reason = pipeline.run(FIRST, YESTERDAY)
    assert ok, reason
    assert pipeline.table_state("main.cost_line_items", "cost_line_id", FIRST, YESTERDAY) == before


def test_days_older_than_the_live_window_keep_the_seats_they_were_pulled_with(copilot_only) -> None:
    pipeline, sim = copilot_only, copilot_only.sims.github_copilot
    ok, reason = pipeline.run(FIRST, YESTERDAY)
    assert ok, reason
    first_pull = per_day(pipeline)
    ada_day = {day: sim.expected_total_usd(day) for day in first_pull}

    sim.removed.add("ada")  # her seat has left the list since
    ok, reason = pipeline.run(FIRST, YESTERDAY)
    assert ok, reason

    live_from = live_window_start(utc_today(), 3)
    again = per_day(pipeline)
    for day, total in again.items():
        if day < live_from:
            assert total == first_pull[day] == ada_day[day], f"{day} is kept as first pulled"
        else:
            assert total == sim.expected_total_usd(day) < first_pull[day], f"{day} is recomputed from the list"
    assert sum(day >= live_from for day in again) == 4, "yesterday and the 3 restatement days"
