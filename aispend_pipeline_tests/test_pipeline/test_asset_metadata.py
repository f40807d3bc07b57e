"""What the Dagster UI shows for a run: row counts, exact totals per provider, previews, the day's top
teams, the inventory's gaps and the report's path."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from aispend_pipeline.cli import JOB_NAME
from aispend_pipeline.core.money import trimmed_money_text
from aispend_pipeline.definitions import build_definitions
from aispend_pipeline.defs.schedules import range_tags

FIRST, LAST = date(2026, 10, 28), date(2026, 11, 3)


def test_every_materialisation_carries_counts_totals_previews_and_the_marts_top_teams(pipeline):
    pipeline.monkeypatch.delenv("ANTHROPIC_ADMIN_KEY")
    # OpenRouter serves the 30 days before its clock's day: set on the day after the range, whatever the date.
    pipeline.monkeypatch.setattr(pipeline.sims.openrouter, "today", LAST + timedelta(days=1))
    result = (
        build_definitions()
        .resolve_job_def(JOB_NAME)
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags=range_tags(FIRST, LAST))
    )
    assert result.success
    metadata = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    for key, values in metadata.items():
        if key in ("analyst_report", "raw/anthropic_costs"):  # a file; a source not configured
            continue
        assert "dagster/row_count" in values, key
        assert isinstance(values["preview"], dg.MarkdownMetadataValue), key
        assert values["preview"].md_str.count("\n") >= 2, f"{key}: a header and rows"

    by_provider = metadata["cost_line_items"]["by_provider"].md_str
    # The transforms rebuild October's invoice month whole, and say so; November has no invoice, so its
    # days after the run's range are unchanged and not rebuilt.
    assert metadata["cost_line_items"]["days"].value.startswith("2026-10-01 .. 2026-11-03")
    totals = pipeline.db.rows(
        "SELECT provider, count(*), sum(cost_usd) FROM main.cost_line_items "
        "WHERE usage_date BETWEEN $first AND $last GROUP BY 1",
        {"first": date(2026, 10, 1), "last": date(2026, 11, 30)},
    )
    for provider, rows, total in totals:
        assert f"| {provider} | {rows} | {trimmed_money_text(total)} |" in by_provider

    top = pipeline.db.rows(
        "SELECT team, sum(cost_usd) FROM main.team_daily_spend WHERE usage_date = $d GROUP BY 1 ORDER BY 2 DESC",
        {"d": LAST},
    )[0]
    for key in ("team_daily_spend", "cost_line_items"):
        md = metadata[key]["top_teams"].md_str
        assert md.startswith(f"**{LAST}**") and f"| {top[0]} | {trimmed_money_text(top[1])} |" in md.splitlines()[4]

    assert metadata["raw/anthropic_costs"]["status"].value.startswith("not configured")
    # OpenRouter sends float sums (0.30000000000000004): rounded half-even, the rounding per day shown.
    assert metadata["raw/openrouter_activity"]["rounding_usd"].value not in ("0", "")
    assert "| 2026-11-0" in metadata["raw/openrouter_activity"]["rounding_by_day"].md_str
    assert set(metadata) >= {"raw/openai_costs", "raw/gcp_billing_costs", "focus_cost_and_usage"}
    inventory = metadata["source_inventory"]
    assert inventory["gap_count"].value >= 1
    assert "**anthropic**: not configured: set ANTHROPIC_ADMIN_KEY" in inventory["coverage_gaps"].md_str
    assert "| groq |" in inventory["preview"].md_str

    report = metadata["analyst_report"]
    path = Path(report["path"].path)
    assert path == (pipeline.db.path.parent / "aispend-report.html").resolve()
    assert report["size_bytes"].value == path.stat().st_size > 0
