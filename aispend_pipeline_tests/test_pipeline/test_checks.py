"""The reconciliation behind the blocking checks catches a lost, doubled or altered cent in any layer."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from aispend_pipeline.reconciliation import raw_vs_line_items, rollup_mismatches, unbalanced_allocations

FIRST, LAST = date(2026, 10, 1), date(2026, 10, 3)
END = LAST + timedelta(days=1)
CHECKS = (raw_vs_line_items, unbalanced_allocations, rollup_mismatches)


@pytest.fixture
def loaded(pipeline):
    ok, reason = pipeline.run(FIRST, LAST)
    assert ok, reason
    return pipeline


def test_a_clean_run_reconciles_everywhere(loaded):
    assert [check(loaded.db, FIRST, END) for check in CHECKS] == [[], [], []]


@pytest.mark.parametrize(
    ("tamper", "detector", "expected_key"),
    [
        (  # one cent more in a normalised line
            "UPDATE staging.line_items SET cost_usd = cost_usd + 0.01 WHERE line_id = "
            "(SELECT min(line_id) FROM staging.line_items WHERE provider = 'openai' AND usage_date = '2026-10-02')",
            raw_vs_line_items,
            ("openai", date(2026, 10, 2)),
        ),
        (  # an attributed line lost
            "DELETE FROM main.cost_line_items WHERE cost_line_id = "
            "(SELECT min(cost_line_id) FROM main.cost_line_items WHERE provider = 'anthropic')",
            unbalanced_allocations,
            None,
        ),
        (  # a rollup row counted twice
            "INSERT INTO main.team_daily_spend SELECT usage_date, team || '-copy', provider, cost_usd, "
            "usage_cost_usd, line_count FROM main.team_daily_spend WHERE usage_date = '2026-10-03' LIMIT 1",
            rollup_mismatches,
            None,
        ),
        (  # a billionth of a dollar moved between two teams of the rollup
            "UPDATE main.team_daily_spend SET cost_usd = cost_usd + 0.000000001 WHERE usage_date = '2026-10-01' "
            "AND team = 'support' AND provider = 'openai'",
            rollup_mismatches,
            (date(2026, 10, 1), "support", "openai"),
        ),
    ],
)
def test_each_check_detects_tampering_in_its_layer(loaded, tamper, detector, expected_key):
    loaded.writer.execute(tamper)
    found = detector(loaded.db, FIRST, END)
    assert len(found) == 1
    if expected_key:
        assert found[0][: len(expected_key)] == expected_key
    expected, actual = found[0][-2:]
    assert expected != actual
    assert expected is None or actual is None or abs(Decimal(expected) - Decimal(actual)) <= Decimal("0.01")
