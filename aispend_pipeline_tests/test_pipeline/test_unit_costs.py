"""`unit_costs` through the real run: tokens as the simulators served them, cost as billed, exact prices,
seat metrics for Copilot, and cost_line_items untouched by the usage pulls."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from aispend_pipeline.core.days import days_between
from aispend_pipeline.simulators.paging import utc_today
from aispend_pipeline.sources.anthropic.simulator import PATH as ANTHROPIC_COSTS
from aispend_pipeline.sources.anthropic.simulator import USAGE_PATH as ANTHROPIC_USAGE
from aispend_pipeline.sources.openai.simulator import PATH as OPENAI_COSTS
from aispend_pipeline.sources.openai.simulator import USAGE_PATH as OPENAI_USAGE

FIRST, LAST = date(2026, 10, 27), date(2026, 11, 3)  # two months, so two month rows per key
KINDS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")


def month(day: date) -> date:
    return day.replace(day=1)


def exact_ratio(n: Decimal, m: int, d: Decimal) -> Decimal:
    return (n * m / d).quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)


def served_tokens(sims, first: date, last: date) -> dict[tuple, list[int]]:
    """(month, provider, model) -> [uncached input, cache read, cache write, output] as the simulators served."""
    served: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for day in days_between(first, last + timedelta(days=1)):
        for u in sims.org.openai_usage(day):
            key = (month(day), "openai", u.model)
            counts = (u.input_uncached_tokens, u.input_cached_tokens, 0, u.output_tokens)
            served[key] = [x + y for x, y in zip(served[key], counts, strict=True)]
        for a in sims.org.anthropic_usage(day):
            writes = a.cache_creation_5m_input_tokens + a.cache_creation_1h_input_tokens
            counts = (a.uncached_input_tokens, a.cache_read_input_tokens, writes, a.output_tokens)
            key = (month(day), "anthropic", a.model)
            served[key] = [x + y for x, y in zip(served[key], counts, strict=True)]
        for line in sims.org.openai_lines(day):  # embeddings: tokens on the cost lines' quantity only
            if line.line_item and line.line_item.startswith("text-embedding") and line.tokens:
                served[(month(day), "openai", line.line_item.split(", ")[0])][0] += line.tokens
    return dict(served)


def stored_tokens(pipeline) -> dict[tuple, list[int]]:
    rows = pipeline.db.rows(
        "SELECT month, provider, model, "
        + ", ".join(f"coalesce(sum({k}), 0)" for k in KINDS)
        + " FROM main.unit_costs WHERE provider IN ('openai', 'anthropic') AND tokens IS NOT NULL GROUP BY ALL"
    )
    return {(r[0], r[1], r[2]): [int(v) for v in r[3:]] for r in rows}


def unit_costs_table(pipeline) -> list[tuple]:
    return pipeline.db.rows("SELECT * FROM main.unit_costs ORDER BY ALL")


def test_tokens_costs_and_prices_follow_what_was_served_and_billed(pipeline) -> None:
    ok, reason = pipeline.run(FIRST, LAST)
    assert ok, reason
    sims = pipeline.sims

    assert stored_tokens(pipeline) == served_tokens(sims, FIRST, LAST)
    # One paged range request per endpoint (8 days fit one page of each).
    assert [sims.openai.request_count(p) for p in (OPENAI_COSTS, OPENAI_USAGE)] == [1, 1]
    assert [sims.anthropic.request_count(p) for p in (ANTHROPIC_COSTS, ANTHROPIC_USAGE)] == [1, 1]

    billed = dict(
        (tuple(r[:4]), r[4])
        for r in pipeline.db.rows(
            "SELECT CAST(date_trunc('month', usage_date) AS DATE), team, provider, model, sum(cost_usd) "
            "FROM main.cost_line_items WHERE charge_category = 'Usage' "
            "OR (charge_category = 'Purchase' AND provider = 'github_copilot') GROUP BY ALL"
        )
    )
    mart = pipeline.db.rows(
        "SELECT month, team, provider, model, cost_usd, tokens, usd_per_million_tokens FROM main.unit_costs"
    )
    assert {tuple(r[:4]): r[4] for r in mart} == billed
    priced = [r for r in mart if r[5]]
    assert len(priced) > 20
    assert all(r[6] == exact_ratio(r[4], 10**6, r[5]) for r in priced)
    assert all(r[6] is None for r in mart if not r[5])

    # The usage pulls add no line item: every provider's day still totals what its cost endpoint billed.
    assert pipeline.db.rows("SELECT count(*) > 0 FROM raw.openai_usage")[0][0]
    assert pipeline.db.rows("SELECT count(*) > 0 FROM raw.anthropic_usage")[0][0]
    for provider in ("openai", "anthropic"):
        lines = dict(
            pipeline.db.rows(
                "SELECT usage_date, sum(cost_usd) FROM main.cost_line_items WHERE provider = $p GROUP BY 1",
                {"p": provider},
            )
        )
        assert lines == {d: sims.expected_total_usd(provider, d) for d in days_between(FIRST, LAST + timedelta(days=1))}
        count = pipeline.db.rows("SELECT count(*) FROM main.cost_line_items WHERE provider = $p", {"p": provider})
        assert count[0][0] == sum(
            sims.org.expected_lines(provider, d) for d in days_between(FIRST, LAST + timedelta(days=1))
        )

    # The report shows the table with its unit columns.
    report = (pipeline.db.path.parent / "aispend-report.html").read_text()
    table = re.search(r'<table id="unit-costs">.*?</table>', report, re.S)
    assert table, "the unit-costs section renders the table"
    for column in ("usd_per_million_tokens", "usd_per_million_input_tokens", "cache_read_savings_usd", "active_seats"):
        assert f"<th>{column}</th>" in table.group(0)

    before = unit_costs_table(pipeline)
    ok, reason = pipeline.run(LAST - timedelta(days=1), LAST)
    assert ok, reason
    assert unit_costs_table(pipeline) == before, "re-running days rebuilds their months to the same rows"


def test_copilot_rows_count_the_seats_active_in_each_month(pipeline) -> None:
    for name, sim in pipeline.sims.simulators.items():
        if name != "github_copilot":
            for setting in sim.env:
                pipeline.monkeypatch.delenv(setting, raising=False)
    last = utc_today() - timedelta(days=1)
    first = last - timedelta(days=9)
    ok, reason = pipeline.run(first, last)
    assert ok, reason

    seats = pipeline.sims.github_copilot.seats()
    for start in sorted({month(d) for d in days_between(first, last + timedelta(days=1))}):
        days = [d for d in days_between(first, last + timedelta(days=1)) if month(d) == start]
        expected = {
            s.login
            for s in seats
            if s.login
            and s.last_activity_at
            and month(s.last_activity_at.astimezone(UTC).date()) == start
            and any(s.is_assigned(d) for d in days)
        }
        rows = pipeline.db.rows(
            "SELECT team, cost_usd, seats, active_seats, usd_per_active_seat FROM main.unit_costs "
            "WHERE provider = 'github_copilot' AND month = $m",
            {"m": start},
        )
        assert sum(r[3] for r in rows) == len(expected), start
        assert sum(r[2] for r in rows) == len(
            {s.login for s in seats if s.login and any(s.is_assigned(d) for d in days)}
        )
        for _, cost, _, active, per_seat in rows:
            assert per_seat == (exact_ratio(cost, 1, Decimal(active)) if active else None)


def raw_state(pipeline, table: str) -> list[tuple]:
    return pipeline.db.rows(f"SELECT * FROM {table} ORDER BY ALL")


def test_a_usage_endpoint_is_retried_and_a_bad_answer_fails_its_source_keeping_stored_days(pipeline) -> None:
    sims = pipeline.sims
    sims.openai.fail_next(429, headers={"Retry-After": "0"}, path=OPENAI_USAGE)
    ok, reason = pipeline.run(FIRST, LAST)
    assert ok, reason
    assert sims.openai.request_count(OPENAI_USAGE) == 2, "the 429, then the answer"
    before = {t: raw_state(pipeline, t) for t in ("raw.anthropic_costs", "raw.anthropic_usage", "main.unit_costs")}

    sims.anthropic.fail_next(200, body={"unexpected": True}, path=ANTHROPIC_USAGE)
    ok, reason = pipeline.run(FIRST, LAST)

    assert not ok and reason.startswith("anthropic") and "usage_report/messages" in reason
    assert {t: raw_state(pipeline, t) for t in before} == before, "the failed source stored nothing, costs included"
    assert sims.openai.request_count(OPENAI_COSTS) == 2, "the other source was pulled and published"
