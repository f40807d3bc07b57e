"""A month against the simulators reproduces their totals to the cent, per provider and day, in every layer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import duckdb

from aispend_pipeline.core.days import days_between
from aispend_pipeline.sources.anthropic.simulator import PATH as ANTHROPIC_COSTS
from aispend_pipeline.sources.anthropic.simulator import USAGE_PATH as ANTHROPIC_USAGE
from aispend_pipeline.sources.openai.simulator import PATH as OPENAI_COSTS
from aispend_pipeline.sources.openai.simulator import USAGE_PATH as OPENAI_USAGE

OCTOBER = (date(2026, 10, 1), date(2026, 10, 31))
LAYERS = ("raw_total", "staging.line_items", "main.cost_line_items", "main.team_daily_spend", "focus")


def per_day(pipeline, sql: str) -> dict[tuple[str, date], Decimal]:
    return {(p, d): t for p, d, t in pipeline.db.rows(sql, {"first": OCTOBER[0], "last": OCTOBER[1]})}


def test_month_matches_simulator_totals_in_every_layer(pipeline):
    ok, reason = pipeline.run(*OCTOBER)
    assert ok, reason
    org = pipeline.sims.org
    truth = {
        (provider, day): org.expected_total_usd(provider, day)
        for provider in ("openai", "anthropic")
        for day in days_between(OCTOBER[0], OCTOBER[1] + timedelta(days=1))
    }
    where = "WHERE usage_date BETWEEN $first AND $last AND provider IN ('openai', 'anthropic') GROUP BY 1, 2"
    raw = {
        **{
            ("openai", d): t
            for d, t in pipeline.db.rows(
                "SELECT usage_date, sum(amount_usd) FROM raw.openai_costs WHERE usage_date BETWEEN $first AND $last "
                "GROUP BY 1",
                {"first": OCTOBER[0], "last": OCTOBER[1]},
            )
        },
        **{
            ("anthropic", d): t
            for d, t in pipeline.db.rows(
                "SELECT usage_date, sum(amount_usd) FROM raw.anthropic_costs WHERE usage_date BETWEEN $first AND $last "
                "GROUP BY 1",
                {"first": OCTOBER[0], "last": OCTOBER[1]},
            )
        },
    }
    layers = {
        "raw_total": raw,
        "staging.line_items": per_day(
            pipeline, f"SELECT provider, usage_date, sum(cost_usd) FROM staging.line_items {where}"
        ),
        "main.cost_line_items": per_day(
            pipeline, f"SELECT provider, usage_date, sum(cost_usd) FROM main.cost_line_items {where}"
        ),
        "main.team_daily_spend": per_day(
            pipeline, f"SELECT provider, usage_date, sum(cost_usd) FROM main.team_daily_spend {where}"
        ),
        "focus": per_day(
            pipeline,
            "SELECT x_Provider, CAST(ChargePeriodStart AS DATE), sum(BilledCost) FROM focus_cost_and_usage "
            "WHERE CAST(ChargePeriodStart AS DATE) BETWEEN $first AND $last "
            "AND ProviderName IN ('OpenAI', 'Anthropic') GROUP BY 1, 2",
        ),
    }
    for layer, totals in layers.items():
        assert totals == truth, f"{layer} differs from the simulator"
    assert sum(truth.values()) > Decimal("1000")  # a realistic month, not an empty one


def test_month_is_one_request_per_page(pipeline):
    ok, reason = pipeline.run(*OCTOBER)
    assert ok, reason
    # 31 daily buckets: OpenAI serves up to 180 per page, Anthropic 31; both usage endpoints 31.
    for sim, paths in (
        (pipeline.sims.openai, (OPENAI_COSTS, OPENAI_USAGE)),
        (pipeline.sims.anthropic, (ANTHROPIC_COSTS, ANTHROPIC_USAGE)),
    ):
        assert [sim.request_count(path) for path in paths] == [1, 1]


def test_line_counts_match_the_source(pipeline):
    ok, reason = pipeline.run(*OCTOBER)
    assert ok, reason
    org = pipeline.sims.org
    days = list(days_between(OCTOBER[0], OCTOBER[1] + timedelta(days=1)))
    for provider in ("openai", "anthropic"):
        expected = sum(org.expected_lines(provider, d) for d in days)
        (stored,) = pipeline.db.rows(
            "SELECT count(*) FROM main.cost_line_items WHERE provider = $p AND usage_date BETWEEN $first AND $last",
            {"p": provider, "first": OCTOBER[0], "last": OCTOBER[1]},
        )[0]
        assert stored == expected


def test_manual_invoices_sum_exactly_per_month(pipeline):
    ok, reason = pipeline.run(date(2026, 9, 1), date(2026, 10, 31))
    assert ok, reason
    rows = pipeline.db.rows(
        "SELECT provider, strftime(usage_date, '%Y-%m'), sum(cost_usd), count(*), min(data_lag), min(cost_source), "
        "min(team) FROM main.cost_line_items WHERE cost_source = 'invoice' GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert rows == [
        ("cursor", "2026-09", Decimal("2400.00"), 30, "monthly", "invoice", "platform"),
        ("cursor", "2026-10", Decimal("2480.00"), 31, "monthly", "invoice", "platform"),
        # EUR converted at fx_rates.csv and rounded to the cent before spreading.
        ("jetbrains", "2026-09", Decimal("910.52"), 30, "monthly", "invoice", "data-platform"),
        ("jetbrains", "2026-10", Decimal("942.65"), 31, "monthly", "invoice", "data-platform"),
    ]


def test_focus_periods_are_utc_midnights_on_a_machine_in_another_zone(pipeline, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        ok, reason = pipeline.run(date(2026, 10, 1), date(2026, 10, 1))
        assert ok, reason
        # An analyst's own session, in the machine's zone, sees the same instants.
        with duckdb.connect(str(pipeline.db.path), read_only=True) as analyst:
            assert analyst.execute("SELECT current_setting('TimeZone')").fetchone() == ("America/New_York",)
            rows = analyst.execute(
                "SELECT DISTINCT epoch(ChargePeriodStart), epoch(ChargePeriodEnd) FROM focus_cost_and_usage "
                "WHERE x_CostSource = 'billed'"
            ).fetchall()
        midnight = datetime(2026, 10, 1, tzinfo=UTC).timestamp()
        assert rows == [(midnight, midnight + 86400)]
    finally:
        monkeypatch.undo()
        time.tzset()
