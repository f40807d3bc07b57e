"""The AWS Cost Explorer source end to end: a month through every layer, teams from the tag and the account."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from aispend_pipeline.core.days import days_between

FIRST, LAST = date(2026, 10, 1), date(2026, 10, 31)


def mapping(pipeline) -> str:
    """The simulator's demo mapping (tag and account rules) as org_mapping.csv."""
    header = "provider,dimension,value,team,cost_centre,product,valid_from,valid_to"
    rows = [",".join([*row.values(), "", ""]) for row in pipeline.sims.aws.demo_mapping_rows()]
    return "\n".join([header, *rows])


def aws_per_day(pipeline, table: str = "main.cost_line_items") -> dict[date, Decimal]:
    rows = pipeline.db.rows(
        f"SELECT usage_date, sum(cost_usd) FROM {table} WHERE provider = 'aws' "
        "AND usage_date BETWEEN $first AND $last GROUP BY 1",
        {"first": FIRST, "last": LAST},
    )
    return dict(rows)


def test_a_month_matches_cost_explorer_per_day_teams_come_from_tags_and_accounts_and_a_rerun_changes_nothing(pipeline):
    pipeline.write_seed("org_mapping.csv", mapping(pipeline))
    ok, reason = pipeline.run(FIRST, LAST)
    assert ok, reason

    sim = pipeline.sims.aws
    expected = {day: sim.expected_total_usd(day) for day in days_between(FIRST, LAST + timedelta(days=1))}
    assert aws_per_day(pipeline) == expected
    assert aws_per_day(pipeline, "main.team_daily_spend") == expected
    assert sim.request_count() == 4 + len(sim.expected_pairs(FIRST, LAST + timedelta(days=1))) == 12

    teams = dict(
        pipeline.db.rows("SELECT team, sum(cost_usd) FROM main.cost_line_items WHERE provider = 'aws' GROUP BY 1", {})
    )
    assert set(teams) == {"search", "support", "research", "data-platform", "unallocated"}
    unallocated = pipeline.db.rows(
        "SELECT DISTINCT account_id, team_tag FROM main.cost_line_items "
        "WHERE provider = 'aws' AND team = 'unallocated'",
        {},
    )
    assert unallocated == [("456789012345", None)], "only untagged lines of the unmapped account"
    tagged = pipeline.db.rows(
        "SELECT DISTINCT team FROM main.cost_line_items WHERE provider = 'aws' AND team_tag = 'data-platform'", {}
    )
    assert tagged == [("data-platform",)], "the tag rule beats the account rule"

    lines = pipeline.db.rows(
        "SELECT DISTINCT service, model, token_direction, token_cache_action, region, usage_type "
        "FROM staging.line_items WHERE provider = 'aws'",
        {},
    )
    by_usage = {row[5]: row[:5] for row in lines}
    assert by_usage["USE1-Claude3Sonnet-input-tokens"] == (
        "Amazon Bedrock",
        "Claude3Sonnet",
        "input",
        None,
        "us-east-1",
    )
    assert by_usage["USW2-NovaPro-cache-read-input-tokens"][1:4] == ("NovaPro", "input", "read")
    assert by_usage["USE1-Guardrail-ContentPolicyTextUnits"][1:3] == (None, None)
    assert by_usage["USW2-MP:USW2_OutputTokenCount-Units"] == (
        "Claude 3 Haiku (Amazon Bedrock Edition)",
        "Claude 3 Haiku",
        "output",
        None,
        "us-west-2",
    )
    assert by_usage["Global-QDeveloperPro-User"][:2] == ("Amazon Q", None)
    services = {row[0] for row in lines}
    assert not services & {
        "Amazon Elastic Compute Cloud - Compute",
        "Amazon Simple Storage Service",
        "Amazon SageMaker",
    }
    categories = pipeline.db.rows(
        "SELECT DISTINCT charge_category, cost_source, data_lag FROM main.cost_line_items WHERE provider = 'aws'", {}
    )
    assert categories == [("Usage", "billed", "daily")]

    before = pipeline.table_state("main.cost_line_items", "cost_line_id", FIRST, LAST)
    raw_before = pipeline.db.rows(
        "SELECT count(*), sum(cost_usd), count(DISTINCT line_ordinal) FROM raw.aws_cost_explorer_costs", {}
    )
    ok, reason = pipeline.run(FIRST, LAST)
    assert ok, reason
    assert pipeline.table_state("main.cost_line_items", "cost_line_id", FIRST, LAST) == before, (
        "re-running changes nothing"
    )
    assert (
        pipeline.db.rows(
            "SELECT count(*), sum(cost_usd), count(DISTINCT line_ordinal) FROM raw.aws_cost_explorer_costs", {}
        )
        == raw_before
    )
