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
    set_score(cost, day, 3.3, params)  # under the one-day threshold (3.5)
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


def test_the_summed_score_needs_each_day_well_above_its_expected():
    params = replace(DetectorParams(), sustained_threshold=0)  # the two-day sum on its own
    cost = matrix({}, noise=0.05)
    cost.iloc[120:122, 0] *= 1.35  # +35% twice: a summed score near 4 on a series floored at a 10% spread
    cost.iloc[130:132, 0] *= 1.7  # +70% twice
    flagged = set(np.flatnonzero(scores(cost, params).is_anomaly["s"].iloc[60:].to_numpy()) + 60)
    assert flagged == {130, 131}
    assert 121 in np.flatnonzero(scores(cost, replace(params, pair_min_pct=0)).is_anomaly["s"].to_numpy())


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


def test_after_a_level_shift_the_level_reads_only_the_new_days_so_no_second_alert_comes_weeks_later():
    cost = matrix({}, noise=0.08, seed=4)
    cost.iloc[60:, 0] *= 2.5
    params = DetectorParams()
    flagged = np.flatnonzero(scores(cost, params).is_anomaly["s"].iloc[20:].to_numpy()) + 20
    assert flagged.min() == 60 and flagged.max() <= 66, "one alert, absorbed within days"
    # back on the long median while it still lags the new level (by up to 1.5x): a second alert
    late = np.flatnonzero(scores(cost, replace(params, regime_windows=False)).is_anomaly["s"].iloc[20:].to_numpy())
    assert late.max() + 20 > 75


def test_a_tiny_series_with_zero_days_keeps_its_level_when_a_week_has_many_zeros():
    rng = np.random.default_rng(1)
    index = pd.date_range("2026-01-05", periods=DAYS, freq="D")
    values = 3.0 * rng.lognormal(0, 0.3, DAYS) * (rng.random(DAYS) >= 0.3)
    values[100:104] = 0.0  # four quiet days: the 7-day median is 0, but so is a third of the days before
    cost = pd.DataFrame({"s": values}, index=index)
    params = DetectorParams()
    assert scores(cost, params).expected["s"].iloc[104:110].min() > 1.0
    assert scores(cost, replace(params, shift_quantile=0)).expected["s"].iloc[104:110].min() < 0.5


def test_the_clipped_spread_is_steadier_than_the_mad_alone():
    index = pd.date_range("2026-01-05", periods=DAYS, freq="D")
    rng = np.random.default_rng(2)
    cost = pd.DataFrame(100.0 * rng.lognormal(0, 0.3, (DAYS, 200)), index=index)
    active = pd.DataFrame(True, index=index, columns=cost.columns)

    def spread(params: DetectorParams) -> np.ndarray:
        result = score_matrix(cost, active, params)  # the bounds are expected x exp(+-threshold x spread)
        return (np.log1p(result.upper) - np.log1p(result.expected)).iloc[-1].to_numpy() / params.score_threshold

    clipped, mad = spread(DetectorParams()), spread(DetectorParams(spread_clip=0))
    assert np.std(clipped) < 0.8 * np.std(mad)
    assert abs(np.median(clipped) / 0.3 - 1) < 0.1, "and still the noise level"


def test_the_two_day_sum_is_scored_against_its_own_spread_on_a_series_whose_days_move_together():
    index = pd.date_range("2026-01-05", periods=DAYS, freq="D")
    rng = np.random.default_rng(3)
    noise = np.zeros((DAYS, 200))
    for day in range(1, DAYS):  # AR(1): a high day is usually followed by another one
        noise[day] = 0.7 * noise[day - 1] + rng.normal(0, 0.15, 200)
    cost = pd.DataFrame(100.0 * np.exp(noise), index=index)
    active = pd.DataFrame(True, index=index, columns=cost.columns)
    # the two-day sum alone, without its per-day share floor
    params = replace(DetectorParams(), score_threshold=99.0, sustained_threshold=0, pair_min_pct=0)
    own = score_matrix(cost, active, params).is_anomaly.iloc[60:].to_numpy().sum()
    daily = score_matrix(cost, active, replace(params, pair_own_spread=False)).is_anomaly.iloc[60:].to_numpy().sum()
    assert own < daily / 3


def test_the_dollar_floor_grows_on_a_series_of_a_few_dollars():
    cost = matrix({}, noise=0.1)
    cost.iloc[:, 0] /= 50  # about $2 a day
    cost.iloc[120, 0] = 20.0  # +$18: above the plain $10 floor, but on a $2 series
    cost.iloc[130, 0] = 60.0  # +$58 is still flagged
    params = DetectorParams()
    flagged = np.flatnonzero(scores(cost, params).is_anomaly["s"].to_numpy())
    assert list(flagged) == [130]
    assert 120 in np.flatnonzero(scores(cost, replace(params, small_floor_usd=0)).is_anomaly["s"].to_numpy())
