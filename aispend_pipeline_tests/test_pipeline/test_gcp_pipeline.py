"""The GCP billing-export source end to end: a month through every layer, teams from labels and projects."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from aispend_pipeline.core.days import days_between

FIRST, LAST = date(2026, 10, 1), date(2026, 10, 31)
MAPPING = """
provider,dimension,value,team,cost_centre,product,valid_from,valid_to
gcp,tag,search,search,CC-210,Search,,
gcp,tag,support,support,CC-220,Support Assistant,,
gcp,gcp_project_id,search-ranking-prod,search,CC-210,Search,,
gcp,gcp_project_id,research-sandbox,research,CC-500,Research,,
gcp,gcp_project_id,data-platform-etl,data-platform,CC-300,Data Platform,,
"""


def gcp_per_day(pipeline, table: str = "main.cost_line_items") -> dict[date, Decimal]:
    rows = pipeline.db.rows(
        f"SELECT usage_date, sum(cost_usd) FROM {table} WHERE provider = 'gcp' "
        "AND usage_date BETWEEN $first AND $last GROUP BY 1",
        {"first": FIRST, "last": LAST},
    )
    return dict(rows)


def test_a_month_matches_the_export_per_day_and_teams_come_from_labels_and_projects(pipeline):
    pipeline.write_seed("org_mapping.csv", MAPPING)
    ok, reason = pipeline.run(FIRST, LAST)
    assert ok, reason

    sim = pipeline.sims.gcp
    expected = {day: pipeline.sims.expected_total_usd("gcp", day) for day in days_between(FIRST, LAST + timedelta(1))}
    assert gcp_per_day(pipeline) == expected
    assert gcp_per_day(pipeline, "main.team_daily_spend") == expected
    assert sim.request_count() == 1, "one BigQuery request for 31 days"

    teams = dict(
        pipeline.db.rows("SELECT team, sum(cost_usd) FROM main.cost_line_items WHERE provider = 'gcp' GROUP BY 1", {})
    )
    assert set(teams) == {"search", "support", "research", "data-platform", "unallocated"}
    unallocated = pipeline.db.rows(
        "SELECT DISTINCT gcp_project_id FROM main.cost_line_items WHERE provider = 'gcp' AND team = 'unallocated'", {}
    )
    assert unallocated == [("support-assist-prod",)], "only the unlabelled rows of an unmapped project"
    credits = pipeline.db.rows(
        "SELECT count(*), sum(cost_usd) FROM main.cost_line_items WHERE provider = 'gcp' "
        "AND charge_category = 'Credit'",
        {},
    )[0]
    assert credits[0] > 0 and credits[1] < 0
    models = {m for (m,) in pipeline.db.rows("SELECT DISTINCT model FROM staging.line_items WHERE provider='gcp'", {})}
    assert {"gemini-2.5-pro", "gemini-2.5-flash"} <= models


def test_a_restated_day_replaces_the_first_pull(pipeline):
    day = date(2026, 10, 12)
    sim = pipeline.sims.gcp
    sim.as_of = datetime(2026, 10, 13, 23, tzinfo=UTC)
    ok, reason = pipeline.run(day - timedelta(days=2), day)
    assert ok, reason
    early = pipeline.db.rows(
        "SELECT sum(cost_usd) FROM main.cost_line_items WHERE provider='gcp' AND usage_date=$d", {"d": day}
    )[0][0]

    sim.as_of = None
    ok, reason = pipeline.run(day - timedelta(days=2), day)
    assert ok, reason
    rows = pipeline.db.rows(
        "SELECT count(*), sum(cost_usd), count(DISTINCT line_id) FROM staging.line_items "
        "WHERE provider='gcp' AND usage_date=$d",
        {"d": day},
    )[0]
    assert early < rows[1] == sim.expected_total_usd(day)
    assert rows[0] == rows[2], "line ids stay unique after the re-pull"
