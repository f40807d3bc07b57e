"""Re-running days, or an overlapping range, leaves every table as one run left it (no duplicates)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import dagster as dg

TABLES = {
    "raw.openai_costs": ("concat_ws('|', usage_date, project_id, line_item, line_ordinal)", "amount_usd"),
    "raw.anthropic_costs": ("concat_ws('|', usage_date, workspace_id, description, line_ordinal)", "amount_usd"),
    "staging.line_items": ("line_id", "cost_usd"),
    "main.cost_line_items": ("cost_line_id", "cost_usd"),
    "main.team_daily_spend": ("concat_ws('|', usage_date, team, provider)", "cost_usd"),
}
FIRST, LAST = date(2026, 10, 1), date(2026, 10, 10)


def snapshot(pipeline, first: date, last: date) -> dict[str, tuple]:
    state = {}
    for table, (key, money) in TABLES.items():
        rows = pipeline.db.rows(
            f"SELECT {key} AS k, {money} FROM {table} WHERE usage_date BETWEEN $first AND $last",
            {"first": first, "last": last},
        )
        keys = [r[0] for r in rows]
        assert len(keys) == len(set(keys)), f"{table} has duplicate keys"
        state[table] = (len(rows), sum(r[1] for r in rows), sorted(keys))
    return state


def test_same_range_twice_and_an_overlapping_range_change_nothing(pipeline):
    assert pipeline.run(FIRST, LAST)[0]
    once = snapshot(pipeline, FIRST, LAST)
    assert all(rows > 0 for rows, _, _ in once.values())

    assert pipeline.run(FIRST, LAST)[0]
    assert snapshot(pipeline, FIRST, LAST) == once

    assert pipeline.run(date(2026, 10, 6), date(2026, 10, 15))[0]
    assert snapshot(pipeline, FIRST, LAST) == once
    whole = snapshot(pipeline, FIRST, date(2026, 10, 15))
    assert pipeline.run(FIRST, date(2026, 10, 15))[0]
    assert snapshot(pipeline, FIRST, date(2026, 10, 15)) == whole


def test_single_day_run_matches_the_same_day_of_a_range_run(pipeline):
    assert pipeline.run(FIRST, LAST)[0]
    day = date(2026, 10, 4)
    from_range = snapshot(pipeline, day, day)
    assert pipeline.run(day, day)[0]
    assert snapshot(pipeline, day, day) == from_range


def test_days_a_source_answered_for_again_unchanged_are_not_rebuilt(pipeline):
    # Manual invoices replace their month whole, whatever day a run covers: a month whose invoices did
    # not change keeps its line items, so a one-day run rebuilds one day, not the month (at full size
    # a month of line items is 1 M rows); a changed invoice rebuilds its whole month.
    def rebuilt_days() -> str:
        with dg.DagsterInstance.get() as instance:
            event = instance.get_latest_materialization_event(dg.AssetKey(["staging", "line_items"]))
        return event.asset_materialization.metadata["days"].value

    day = date(2026, 10, 14)
    assert pipeline.run(day, day)[0]
    assert rebuilt_days() == "2026-10-01 .. 2026-10-31 (31 days)", "the month's invoice days are new"
    assert pipeline.run(day, day)[0]
    assert rebuilt_days() == "2026-10-14 .. 2026-10-14 (1 days)", "answered again, unchanged"

    invoices = (pipeline.seeds_dir / "manual_invoices.csv").read_text()
    pipeline.write_seed("manual_invoices.csv", invoices.replace("2026-10,2480.00", "2026-10,2520.00"))
    assert pipeline.run(day, day)[0]
    assert rebuilt_days() == "2026-10-01 .. 2026-10-31 (31 days)"
    (cursor,) = pipeline.db.rows(
        "SELECT sum(cost_usd) FROM main.cost_line_items WHERE provider = 'cursor' "
        "AND usage_date BETWEEN DATE '2026-10-01' AND DATE '2026-10-31'"
    )[0]
    assert cursor == Decimal("2520.00")
