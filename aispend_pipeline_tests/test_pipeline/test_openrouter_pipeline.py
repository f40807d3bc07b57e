"""OpenRouter end to end: the served month matches the simulator per day, and days older than the API's
30-day window stay exactly as stored."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from aispend_pipeline.core.days import days_between
from aispend_pipeline.simulators.paging import utc_today
from aispend_pipeline.sources.openrouter.simulator import RESEARCH_WORKSPACE, SUPPORT_WORKSPACE

TODAY = utc_today()
MAPPING_FIELDS = ("provider", "dimension", "value", "team", "cost_centre", "product")


def write_mapping(pipeline) -> None:
    rows = [",".join(row[f] for f in MAPPING_FIELDS) + ",," for row in pipeline.sims.openrouter.demo_mapping_rows()]
    pipeline.write_seed("org_mapping.csv", "\n".join([",".join(MAPPING_FIELDS) + ",valid_from,valid_to", *rows]))


def per_day(pipeline, table: str, first: date, last: date) -> dict[date, Decimal]:
    rows = pipeline.db.rows(
        f"SELECT usage_date, sum(cost_usd) FROM {table} WHERE provider = 'openrouter' "
        "AND usage_date BETWEEN $first AND $last GROUP BY 1",
        {"first": first, "last": last},
    )
    return dict(rows)


def stored(pipeline, first: date, last: date) -> dict[str, list[tuple]]:
    """Every OpenRouter row of the raw table and of the attributed lines over first..last, sorted."""
    params = {"first": first, "last": last}
    where = "WHERE usage_date BETWEEN $first AND $last"
    return {
        "raw": sorted(pipeline.db.rows(f"SELECT * FROM raw.openrouter_activity {where}", params)),
        "lines": sorted(
            pipeline.db.rows(
                f"SELECT cost_line_id, usage_date, model, team, cost_usd, quantity FROM main.cost_line_items {where} "
                "AND provider = 'openrouter'",
                params,
            )
        ),
    }


def test_a_month_matches_the_served_days_exactly_is_one_request_and_rerunning_changes_nothing(pipeline):
    write_mapping(pipeline)
    first, last = TODAY - timedelta(days=31), TODAY - timedelta(days=1)
    ok, reason = pipeline.run(first, last)
    assert ok, reason

    sim = pipeline.sims.openrouter
    served = list(days_between(TODAY - timedelta(days=30), TODAY))
    expected = {day: sim.expected_total_usd(day) for day in served}
    assert per_day(pipeline, "main.cost_line_items", first, last) == expected
    assert per_day(pipeline, "main.team_daily_spend", first, last) == expected
    assert sim.spend_usd(first) > 0 and first not in per_day(pipeline, "staging.line_items", first, last)
    assert sim.request_count() == 1, "one /activity call for 31 days"

    teams = dict(
        pipeline.db.rows(
            "SELECT team, count(DISTINCT coalesce(workspace_id, '')) FROM main.cost_line_items "
            "WHERE provider = 'openrouter' GROUP BY 1",
            {},
        )
    )
    assert set(teams) == {"research", "support", "search", "platform"}
    research = pipeline.db.rows(
        "SELECT DISTINCT workspace_id FROM main.cost_line_items WHERE provider = 'openrouter' AND team = 'research'", {}
    )
    assert research == [(RESEARCH_WORKSPACE,)]
    search = pipeline.db.rows(
        "SELECT DISTINCT model, workspace_id = $support FROM main.cost_line_items "
        "WHERE provider = 'openrouter' AND team = 'search'",
        {"support": SUPPORT_WORKSPACE},
    )
    assert search == [("google/gemini-2.5-flash", False)], "a workspace rule beats a model rule"
    shape = pipeline.db.rows(
        "SELECT DISTINCT service, charge_category, cost_source, data_lag, unit FROM staging.line_items "
        "WHERE provider = 'openrouter'",
        {},
    )
    assert shape == [("OpenRouter", "Usage", "billed", "daily", "tokens")]
    (tokens,) = pipeline.db.rows(
        "SELECT sum(prompt_tokens + completion_tokens) = (SELECT sum(quantity) FROM staging.line_items "
        "WHERE provider = 'openrouter') FROM raw.openrouter_activity",
        {},
    )[0]
    assert tokens

    once = stored(pipeline, first, last)
    ok, reason = pipeline.run(first, last)
    assert ok, reason
    assert stored(pipeline, first, last) == once


def test_days_older_than_the_window_stay_as_stored_and_a_quiet_day_is_emptied(pipeline):
    write_mapping(pipeline)
    sim = pipeline.sims.openrouter
    earlier = TODAY - timedelta(days=20)
    sim.today = earlier  # twenty days ago, the API served the 30 days before then
    old_first, old_last = earlier - timedelta(days=30), earlier - timedelta(days=1)
    ok, reason = pipeline.run(old_first, old_last)
    assert ok, reason
    kept_first, kept_last = old_first, TODAY - timedelta(days=31)  # out of today's window
    before = stored(pipeline, kept_first, kept_last)
    assert len(before["raw"]) > 0 and len(before["lines"]) > 0

    quiet = TODAY - timedelta(days=25)  # served then and now
    assert stored(pipeline, quiet, quiet)["raw"], "the first run stored the day"

    sim.today = None
    sim.quiet_days = {quiet}
    ok, reason = pipeline.run(old_first, TODAY - timedelta(days=1))
    assert ok, reason

    assert stored(pipeline, kept_first, kept_last) == before, "days the API no longer serves are untouched"
    served = list(days_between(TODAY - timedelta(days=30), TODAY))
    totals = per_day(pipeline, "main.cost_line_items", TODAY - timedelta(days=30), TODAY - timedelta(days=1))
    assert totals == {day: sim.expected_total_usd(day) for day in served if day != quiet}
    assert quiet not in totals, "a day inside the window without activity replaces what was stored"
