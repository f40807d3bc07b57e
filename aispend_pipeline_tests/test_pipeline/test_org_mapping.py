"""Attribution by org_mapping.csv: effective dating, precedence between overlapping rules, unallocated."""

from __future__ import annotations

from datetime import date

import pytest

from aispend_pipeline.errors import SeedError
from aispend_pipeline.seed_files import read_org_mapping

HEADER = "provider,dimension,value,team,cost_centre,product,valid_from,valid_to"
RULES = f"""
{HEADER}
openai,project_id,proj_growth,growth,CC-410,Growth,,2026-10-15
openai,project_id,proj_growth,marketing,CC-420,Site,2026-10-15,
*,project_id,proj_search,wrong-wildcard-provider,,,,
openai,project_id,proj_search,search,CC-210,Search,,
*,model,gpt-4o-mini-2024-07-18,model-team,,,,
openai,project_id,proj_support_bot,support,CC-220,Bot,,
anthropic,*,*,platform,CC-100,,,
anthropic,workspace_id,wrkspc_research,research,CC-500,,,
"""


def teams(pipeline, where: str) -> set[tuple]:
    return set(
        pipeline.db.rows(
            f"SELECT usage_date, team, cost_centre, allocation_method, allocation_rule FROM main.cost_line_items "
            f"WHERE {where}"
        )
    )


def test_mapping_changes_team_mid_range_and_most_specific_rule_wins(pipeline):
    pipeline.write_seed("org_mapping.csv", RULES)
    assert pipeline.run(date(2026, 10, 10), date(2026, 10, 20))[0]

    growth = teams(pipeline, "project_id = 'proj_growth'")
    assert {(d, t) for d, t, *_ in growth if d < date(2026, 10, 15)} == {
        (date(2026, 10, d), "growth") for d in range(10, 15)
    }
    assert {(d, t) for d, t, *_ in growth if d >= date(2026, 10, 15)} == {
        (date(2026, 10, d), "marketing") for d in range(15, 21)
    }
    assert {rule for *_, rule in growth} == {"org_mapping.csv line 2", "org_mapping.csv line 3"}

    # Same rank: the rule for the exact provider beats the '*'-provider rule.
    assert {t for _, t, *_ in teams(pipeline, "project_id = 'proj_search'")} == {"search"}
    # A project rule (rank 4) beats a model rule (rank 6) on the same line.
    assert {t for _, t, *_ in teams(pipeline, "project_id = 'proj_support_bot'")} == {"support"}
    # The model rule applies where no project rule does.
    assert {t for _, t, *_ in teams(pipeline, "project_id = 'proj_sandbox' AND model = 'gpt-4o-mini-2024-07-18'")} == {
        "model-team"
    }
    # A workspace rule beats the provider-wide '*' rule; the default workspace falls to '*'.
    assert {t for _, t, *_ in teams(pipeline, "workspace_id = 'wrkspc_research'")} == {"research"}
    assert {t for _, t, *_ in teams(pipeline, "provider = 'anthropic' AND workspace_id IS NULL")} == {"platform"}


def test_unmatched_lines_are_unallocated_and_visible(pipeline):
    pipeline.write_seed("org_mapping.csv", RULES)
    assert pipeline.run(date(2026, 10, 10), date(2026, 10, 12))[0]
    unallocated = teams(pipeline, "project_id = 'proj_sandbox' AND coalesce(model, '') <> 'gpt-4o-mini-2024-07-18'")
    assert unallocated and {(t, c, m, r) for _, t, c, m, r in unallocated} == {
        ("unallocated", None, "unallocated", None)
    }
    (share,) = pipeline.db.rows(
        "SELECT sum(cost_usd) FILTER (WHERE team = 'unallocated') / sum(cost_usd) FROM main.cost_line_items"
    )[0]
    assert 0 < share < 1


def test_no_mapping_file_means_everything_unallocated(pipeline):
    (pipeline.seeds_dir / "org_mapping.csv").unlink()
    (pipeline.seeds_dir / "manual_invoices.csv").unlink()
    assert pipeline.run(date(2026, 10, 1), date(2026, 10, 2))[0]
    assert pipeline.db.rows("SELECT DISTINCT team FROM main.team_daily_spend") == [("unallocated",)]


def test_overlapping_rules_for_the_same_key_are_a_seed_error(tmp_path):
    (tmp_path / "org_mapping.csv").write_text(
        f"{HEADER}\nopenai,project_id,p1,a,,,2026-01-01,2026-03-01\nopenai,project_id,p1,b,,,2026-02-01,\n"
    )
    with pytest.raises(SeedError, match=r"org_mapping.csv line 3 field 'valid_from'.*overlaps the rule on line 2"):
        read_org_mapping(tmp_path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("openai,project,p1,a,,,,", r"line 2 field 'dimension': 'project' is not one of"),
        ("openai,project_id,p1,,,,,", r"line 2 field 'team': is empty"),
        ("openai,project_id,p1,a,,,2026-13-01,", r"line 2 field 'valid_from': '2026-13-01' is not an ISO date"),
        ("openai,project_id,p1,a,,,2026-02-01,2026-01-01", r"line 2 field 'valid_to'"),
        ("openai,*,p1,a,,,,", r"line 2 field 'value': use value '\*' exactly when dimension is '\*'"),
    ],
)
def test_bad_mapping_rows_name_file_line_and_field(tmp_path, row, message):
    (tmp_path / "org_mapping.csv").write_text(f"{HEADER}\n{row}\n")
    with pytest.raises(SeedError, match=message):
        read_org_mapping(tmp_path)


def test_a_bad_seed_row_fails_the_run_and_keeps_the_last_good_attribution(pipeline):
    assert pipeline.run(date(2026, 10, 1), date(2026, 10, 2))[0]
    before = pipeline.table_state("main.cost_line_items", "cost_line_id || team", date(2026, 10, 1), date(2026, 10, 2))
    pipeline.write_seed("org_mapping.csv", f"{HEADER}\nopenai,project_id,proj_search,search,,,yesterday,\n")
    ok, reason = pipeline.run(date(2026, 10, 1), date(2026, 10, 2))
    assert not ok
    assert reason == "org_mapping.csv line 2 field 'valid_from': 'yesterday' is not an ISO date (YYYY-MM-DD)"
    after = pipeline.table_state("main.cost_line_items", "cost_line_id || team", date(2026, 10, 1), date(2026, 10, 2))
    assert after == before


def test_only_keys_some_rule_names_are_joined_with_the_rules(pipeline):
    # A line's model (or any key no rule names) cannot pick a team: unpivoting it would only make rows
    # to join for nothing (at 11 M lines, 13 keys were 4x the pairs of the 6 the rules used).
    from aispend_pipeline.allocation.org_mapping import _key_pairs_sql

    assert pipeline.run(date(2026, 10, 10), date(2026, 10, 10))[0]
    window = {"start": date(2026, 10, 10), "end": date(2026, 10, 11)}

    def pairs(dimensions: set[str]) -> set[str]:
        return {
            d for (d,) in pipeline.db.rows(f"SELECT DISTINCT dimension FROM ({_key_pairs_sql(dimensions)})", window)
        }

    assert pairs({"project_id", "workspace_id"}) == {"project_id", "workspace_id"}
    assert pairs({"project_id", "model", "*"}) == {"project_id", "model", "*"}
    assert pairs(set()) == set()
