"""The demo's seed files are generated for its own days: any window gets a mapping and its months' invoices."""

from __future__ import annotations

from datetime import date

import pytest

from aispend_pipeline.seed_files import read_manual_invoices, read_org_mapping
from aispend_pipeline.simulators import simulator_class
from aispend_pipeline.simulators.demo_seeds import months_touched, write_demo_seeds
from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.sources.registry import SOURCES


def test_months_touched_by_a_window() -> None:
    assert months_touched(date(2026, 12, 20), date(2027, 2, 1)) == ["2026-12", "2027-01", "2027-02"]
    assert months_touched(date(2025, 3, 31), date(2025, 3, 31)) == ["2025-03"]


@pytest.mark.parametrize(
    ("first", "last"), [(date(2026, 12, 3), date(2027, 1, 1)), (date(2024, 2, 29), date(2024, 2, 29))]
)
def test_every_month_of_any_window_has_a_monthly_invoice_and_every_simulator_a_rule(tmp_path, first, last) -> None:
    with_simulator = [source for source in SOURCES if source.simulator]
    rows = [row for s in with_simulator for row in simulator_class(s.simulator)(SyntheticOrg()).demo_mapping_rows()]
    seeds = write_demo_seeds(tmp_path / "demo-seeds", first, last, rows)
    rules = read_org_mapping(seeds)
    assert {rule.provider for rule in rules} >= {source.name for source in with_simulator}
    moved = [rule for rule in rules if rule.valid_from or rule.valid_to]
    assert moved and all(first <= (rule.valid_from or rule.valid_to) <= last for rule in moved)
    invoices = read_manual_invoices(seeds)
    assert {i.invoice_month for i in invoices} == set(months_touched(first, last))
    assert {i.provider for i in invoices} == {"cursor", "jetbrains"}
    assert all(i.amount_usd > 0 for i in invoices)  # the EUR invoice found its month's rate


def test_the_demo_says_so_when_it_cannot_write_its_seeds(tmp_path, monkeypatch, capsys) -> None:
    from aispend_pipeline.demo import run_demo

    (tmp_path / "a-file").write_text("not a directory")
    monkeypatch.setenv("AISPEND_DUCKDB_PATH", str(tmp_path / "a-file" / "aispend.duckdb"))
    monkeypatch.setenv("AISPEND_SEEDS_DIR", str(tmp_path))
    assert run_demo(2) == 2
    captured = capsys.readouterr()
    assert "AISPEND_SEEDS_DIR is ignored" in captured.out
    assert "cannot write the demo's seeds" in captured.err and "AISPEND_DUCKDB_PATH" in captured.err
