"""The Azure Cost Management source end to end: a month through every layer over HTTPS, teams from tags."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from aispend_pipeline.core.days import days_between

FIRST, LAST = date(2026, 10, 1), date(2026, 10, 31)
HEADER = "provider,dimension,value,team,cost_centre,product,valid_from,valid_to"


def azure_per_day(pipeline, table: str = "main.cost_line_items") -> dict[date, Decimal]:
    rows = pipeline.db.rows(
        f"SELECT usage_date, sum(cost_usd) FROM {table} WHERE provider = 'azure' "
        "AND usage_date BETWEEN $first AND $last GROUP BY 1",
        {"first": FIRST, "last": LAST},
    )
    return dict(rows)


def test_a_month_matches_the_api_per_day_to_the_cent_and_a_rerun_changes_nothing(pipeline):
    sim = pipeline.sims.azure
    rules = [",".join([*row.values(), "", ""]) for row in sim.demo_mapping_rows()]  # the demo's own rules
    pipeline.write_seed("org_mapping.csv", "\n".join([HEADER, *rules]))
    ok, reason = pipeline.run(FIRST, LAST)
    assert ok, reason

    expected = {day: sim.expected_total_usd(day) for day in days_between(FIRST, LAST + timedelta(1))}
    assert azure_per_day(pipeline) == expected
    assert azure_per_day(pipeline, "main.team_daily_spend") == expected
    assert sim.request_count() == 1, "one Cost Management query for 31 days"

    teams = dict(
        pipeline.db.rows("SELECT team, sum(cost_usd) FROM main.cost_line_items WHERE provider='azure' GROUP BY 1", {})
    )
    assert set(teams) == {"search", "support", "research", "data-platform", "unallocated"}
    unallocated = pipeline.db.rows(
        "SELECT DISTINCT resource_group FROM main.cost_line_items WHERE provider='azure' AND team='unallocated'", {}
    )
    assert unallocated == [("rg-platform-shared",)], "only the untagged group of a mapped-nowhere subscription"
    query = "SELECT DISTINCT service FROM staging.line_items WHERE provider='azure'"
    services = {s for (s,) in pipeline.db.rows(query, {})}
    assert services == {"Foundry Models", "Cognitive Services"}, "no non-AI service leaks in"
    models = dict(
        pipeline.db.rows(
            "SELECT model, count(DISTINCT token_direction) FROM staging.line_items WHERE provider='azure' "
            "AND model IS NOT NULL GROUP BY 1",
            {},
        )
    )
    assert {"gpt-4o", "gpt-4o-mini", "gpt-35-turbo", "llama-3.3-70b-instruct"} <= set(models)
    assert models["gpt-4o"] == 2, "input and output meters"
    purchases = pipeline.db.rows(
        "SELECT usage_date, model, cost_usd FROM main.cost_line_items WHERE provider='azure' "
        "AND charge_category='Purchase'",
        {},
    )
    assert purchases == [(FIRST, None, Decimal("260"))]

    before = pipeline.table_state("main.cost_line_items", "cost_line_id", FIRST, LAST)
    ok, reason = pipeline.run(FIRST, LAST)
    assert ok, reason
    assert pipeline.table_state("main.cost_line_items", "cost_line_id", FIRST, LAST) == before
    assert azure_per_day(pipeline) == expected
