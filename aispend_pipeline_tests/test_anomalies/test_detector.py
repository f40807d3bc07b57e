"""The detector on crafted series: what must be flagged, what must not, and stable rows."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from aispend_pipeline.anomalies.build import build_spend_anomalies
from aispend_pipeline.anomalies.detector import DetectorParams

from .crafted import START, steady

END = START + timedelta(days=120)


def flagged_days(frame: pd.DataFrame) -> list[int]:
    return [(d.date() - START).days for d in frame.loc[frame["is_anomaly"], "usage_date"]]


def test_a_5x_one_day_spike_is_flagged_with_a_readable_reason(ledger):
    values = steady(90, 100.0)
    values[70] *= 5
    ledger.lines("support", "openai", values)
    build_spend_anomalies(ledger.con, START, END)
    rows = ledger.anomalies()
    assert flagged_days(rows) == [70]
    spike = rows[rows["is_anomaly"]].iloc[0]
    assert spike["anomaly_type"] == "spike" and spike["severity"] == "high"
    day = START + timedelta(days=70)
    assert spike["reason"].startswith("5.") and f"for a {day.strftime('%A')}" in spike["reason"]
    assert 90 <= float(spike["expected_usd"]) <= 110
    bounds = [float(spike[c]) for c in ("lower_usd", "expected_usd", "upper_usd", "cost_usd")]
    assert bounds == sorted(bounds)
    cost, expected, impact = (Decimal(str(spike[c])) for c in ("cost_usd", "expected_usd", "impact_usd"))
    assert impact == cost - expected  # exact decimals (compared as decimals: the frame holds floats)


def test_a_weekend_dip_is_not_flagged(ledger):
    ledger.lines("platform", "anthropic", steady(90, 80.0, noise=0.1, weekend=0.2))
    build_spend_anomalies(ledger.con, START, END, DetectorParams(direction="both"))
    rows = ledger.anomalies()
    assert len(rows) == 90 and flagged_days(rows) == []


def test_three_to_nine_dollars_on_a_tiny_series_is_not_flagged(ledger):
    values = steady(60, 3.0, noise=0.1)
    values[50] = 9.0
    ledger.lines("sandbox", "openai", values)
    build_spend_anomalies(ledger.con, START, END)
    rows = ledger.anomalies()
    assert flagged_days(rows) == []
    day = rows[rows["usage_date"] == pd.Timestamp(START + timedelta(days=50))].iloc[0]
    assert day["score"] > 3.5 and "under the impact floor" in day["reason"]


def test_a_level_shift_alerts_once_and_is_absorbed(ledger):
    values = steady(60, 100.0) + [3 * v for v in steady(60, 100.0, seed=2)]
    ledger.lines("search", "openai", values)
    build_spend_anomalies(ledger.con, START, END)
    days = flagged_days(ledger.anomalies())
    assert days[0] == 60
    assert days == list(range(60, days[-1] + 1)), "one run of consecutive days: one alert"
    assert days[-1] <= 60 + 6, "absorbed into the baseline within days"


def test_a_month_start_seat_charge_is_not_scored(ledger):
    usage = steady(90, 50.0)
    ledger.lines("eng", "cursor", usage)
    seat_days = [d for d in range(90) if (START + timedelta(days=d)).day == 1]
    for offset in seat_days:
        ledger.lines("eng", "cursor", [1200.0], start=START + timedelta(days=offset), category="Purchase", model=None)
    build_spend_anomalies(ledger.con, START, END)
    rows = ledger.anomalies()
    assert flagged_days(rows) == []
    first = rows[rows["usage_date"] == pd.Timestamp(START + timedelta(days=seat_days[-1]))].iloc[0]
    assert float(first["cost_usd"]) == usage[seat_days[-1]], "the anomaly row carries Usage charges only"


def test_a_restated_day_updates_its_row_and_never_duplicates_it(ledger):
    values = steady(60, 100.0)
    ledger.lines("support", "openai", values)
    build_spend_anomalies(ledger.con, START, END)
    before = ledger.anomalies()
    day = START + timedelta(days=55)
    ledger.lines("support", "openai", [600.0], start=day)  # the provider restates the day
    build_spend_anomalies(ledger.con, day - timedelta(days=3), day + timedelta(days=1))
    after = ledger.anomalies()
    assert len(after) == len(before) == 60
    assert after.duplicated(["usage_date", "team", "provider"]).sum() == 0
    row = after[after["usage_date"] == pd.Timestamp(day)].iloc[0]
    assert float(row["cost_usd"]) == 600.0 and row["is_anomaly"]


def test_a_one_day_run_scores_a_day_exactly_as_a_backfill_does(ledger):
    values = steady(200, 120.0, noise=0.2, weekend=0.4)
    values[150] *= 4
    ledger.lines("research", "anthropic", values)
    ledger.lines("growth", "openai", steady(200, 30.0, noise=0.3, seed=5))
    build_spend_anomalies(ledger.con, START, START + timedelta(days=200))
    backfill = ledger.anomalies()
    for offset in (140, 150, 199):
        day = START + timedelta(days=offset)
        build_spend_anomalies(ledger.con, day, day + timedelta(days=1))
    pd.testing.assert_frame_equal(ledger.anomalies(), backfill)
    # the noisy growth series (sigma 0.3) may carry a chance flag; it is scored the same either way
    assert flagged_days(backfill[backfill["team"] == "research"]) == [150]


def test_too_little_history_is_a_status_and_a_new_team_is_new_spend(ledger):
    ledger.lines("search", "openai", steady(60, 100.0))
    ledger.lines("marketing", "openai", steady(20, 40.0), start=START + timedelta(days=40))
    build_spend_anomalies(ledger.con, START, END)
    search = ledger.anomalies("search")
    assert set(search.head(14)["status"]) == {"insufficient_history"} and not search.head(14)["is_anomaly"].any()
    assert not search["is_anomaly"].any(), "the warehouse's first days are not 'new spend'"
    marketing = ledger.anomalies("marketing")
    assert marketing["anomaly_type"].tolist()[:2] == ["new_spend", None]
    assert flagged_days(marketing) == [40]
    assert marketing.iloc[0]["reason"].startswith("new spend: $")


def test_no_rollup_rows_stores_nothing(ledger):
    summary = build_spend_anomalies(ledger.con, date(2026, 1, 1), date(2026, 2, 1))
    assert summary.rows == 0 and ledger.anomalies().empty


def test_detector_settings_override_the_defaults_and_are_validated():
    from aispend_pipeline.settings import SettingsError, detector_params, settings_problems

    params = detector_params({"AISPEND_ANOMALY_SCORE_THRESHOLD": "4", "AISPEND_ANOMALY_MIN_IMPACT_USD": "25"})
    assert (params.score_threshold, params.min_impact_usd, params.new_spend_min_usd) == (4.0, 25.0, 25.0)
    assert detector_params({}) == DetectorParams()
    problems = settings_problems({"AISPEND_ANOMALY_MIN_IMPACT_PCT": "lots"})
    assert any("AISPEND_ANOMALY_MIN_IMPACT_PCT='lots'" in p for p in problems)
    with pytest.raises(SettingsError, match="AISPEND_ANOMALY_SCORE_THRESHOLD"):
        detector_params({"AISPEND_ANOMALY_SCORE_THRESHOLD": "-1"})


def test_inside_the_callers_transaction_the_caller_decides_what_is_published(ledger):
    ledger.lines("support", "openai", steady(30, 100.0))
    ledger.con.begin()
    build_spend_anomalies(ledger.con, START, END)
    assert len(ledger.anomalies()) == 30
    ledger.con.rollback()
    build_spend_anomalies(ledger.con, START, START)  # creates the table outside the rolled-back work
    assert ledger.anomalies().empty
    ledger.con.begin()
    build_spend_anomalies(ledger.con, START, END)
    ledger.con.commit()
    assert len(ledger.anomalies()) == 30
