"""The detector's two-day sum rule and weekend-pooled offsets, on crafted matrices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from aispend_pipeline.anomalies.detector import DetectorParams, score_matrix

DAYS = 140


def matrix(weekday_factors: dict[int, float], noise: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """One $100/day series with the given factor per weekday (Monday = 0) and log-normal noise."""
    index = pd.date_range("2026-01-05", periods=DAYS, freq="D")
    factor = np.array([weekday_factors.get(d, 1.0) for d in index.weekday])
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"s": 100.0 * factor * rng.lognormal(0, noise, DAYS)}, index=index)


def scores(cost: pd.DataFrame, params: DetectorParams):
    return score_matrix(cost, pd.DataFrame(True, index=cost.index, columns=cost.columns), params)


def set_score(cost: pd.DataFrame, day: int, target: float, params: DetectorParams) -> None:
    """Set one day's cost so that it scores `target` (its baseline reads only the days before it)."""
    result = scores(cost, params)
    expected_log = np.log1p(result.expected["s"].iloc[day])
    scale = (np.log1p(cost["s"].iloc[day]) - expected_log) / result.score["s"].iloc[day]
    cost.iloc[day, 0] = np.expm1(expected_log + target * scale)


def test_a_rise_over_two_days_flags_on_the_second_day_by_the_summed_score():
    params = DetectorParams()
    cost = matrix({}, noise=0.2)
    day = 120
    set_score(cost, day, 3.5, params)  # under the one-day threshold (3.75)
    set_score(cost, day + 1, 2.0, params)  # under the two-days-in-a-row threshold (2.5)
    with_sum = scores(cost, params)
    without = scores(cost, replace(params, pair_threshold=0))
    assert with_sum.score["s"].iloc[day + 1] < params.sustained_threshold
    assert not without.is_anomaly["s"].iloc[day : day + 2].any()
    assert with_sum.is_anomaly["s"].iloc[day + 1] and not with_sum.is_anomaly["s"].iloc[day]


def test_the_summed_score_needs_the_impact_floor():
    params = DetectorParams(min_impact_usd=1000.0)
    cost = matrix({}, noise=0.2)
    cost.iloc[120:122, 0] *= 2.5
    assert scores(cost, replace(params, min_impact_usd=10.0)).is_anomaly["s"].iloc[120:122].any()
    assert not scores(cost, params).is_anomaly["s"].iloc[60:].any()


def test_pooled_weekend_offsets_keep_a_saturday_that_really_differs_from_sunday():
    cost = matrix({5: 0.5, 6: 0.2})
    pooled = scores(cost, DetectorParams())
    saturdays = cost.index.weekday == 5
    assert not pooled.is_anomaly["s"].iloc[60:].any()
    assert pooled.score["s"][saturdays].iloc[-8:].abs().max() < 2


def test_pooled_offsets_are_steadier_on_a_noisy_series_than_one_per_weekday():
    cost = matrix({5: 0.7, 6: 0.7}, noise=0.35, seed=3)
    pooled = scores(cost, DetectorParams()).expected["s"].iloc[70:]
    own = scores(cost, DetectorParams(weekend_offsets=False)).expected["s"].iloc[70:]
    weekdays = cost.index.weekday[70:] < 5
    # the true weekday expectation is flat: pooled estimates of Mon-Fri scatter less around it
    assert np.log(pooled[weekdays]).diff().abs().mean() < np.log(own[weekdays]).diff().abs().mean()
