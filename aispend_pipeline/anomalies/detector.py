"""The robust seasonal baseline that scores daily Usage spend ("log-median-weekday").

Every series (one team on one provider) is scored on the log scale, `y = log1p(cost)`, using only the
days before the scored day:

- level `m`: the median of `y` over the trailing `window_days`. A shift is found when the median of the
  last `shift_window_days` differs from it by more than `level_shift_ratio` and lies outside the
  `shift_quantile` range of the days before them (a week of zeros on a series with many zero days is its
  usual range, not a shift). From a shift on, the level is the median of only the days since it (7, 14,
  28 days, then the long median again): a lasting shift is absorbed after one alert and does not alert a
  second time when the long median, still half old days, takes over;
- weekday offset `o`: the median of `y - m` over the last `weekday_weeks` weeks of Mon-Fri days or of
  Sat-Sun days (weekend dips of developer tools are expected, not anomalous). Pooled offsets are about
  twice as steady as one per weekday on a noisy series; a weekday whose own offset is more than
  `weekday_z` standard errors from the pooled one keeps its own (a Saturday unlike Sunday);
- spread: the rms of the de-seasonalised deviations over `spread_days`, each clipped at `spread_clip`
  robust sigmas (1.4826 x MAD) and rescaled to sigma. As robust to a past spike as the MAD, and about
  1.5x steadier: series whose spread came out low by chance caused most false alerts. Floored at
  `min_scale` (about 10%) so a flat series does not turn every cent into a spike;
- `score = (y - m - o) / spread`. A day is a spike when the score exceeds `score_threshold` AND its
  impact (cost - expected) is at least `min_impact_usd` AND at least `min_impact_pct` of expected (and,
  below `small_floor_usd` expected, `min_impact_usd x sqrt(small_floor_usd / expected)`: a series of a
  few dollars jumps several-fold by itself). A $3 -> $9 jump on a tiny series is not worth anyone's
  attention. Two days in a row above `sustained_threshold` (and the floor) also flag. So does a two-day
  sum of deviations over its own spread (`pair_own_spread`; days are correlated when a level lags a
  growing series) above `pair_threshold`, with both days' impact above the floor and each day at least
  `pair_min_pct` above its expected: a rise spread over two days that neither day shows alone (the
  second condition keeps the lower two-day threshold off noisy series that drift up a little).

A series with fewer than `min_history_days` days is not flagged (status `insufficient_history`). A
team's first material spend on a provider (no day of `new_spend_min_usd` or more in the trailing
window) is its own type, `new_spend`, when the provider's data covers enough days to know it is new.

Each statistic reads a bounded trailing window, so scoring yesterday in a daily run gives the same row as
a backfill of the year: `history_days_needed` says how many days before a range must be read.
Everything is vectorised over a (days x series) matrix with moving windows (bottleneck, pandas).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import bottleneck as bn
import numpy as np
import pandas as pd

METHOD = "log_median_weekday"
DETECTOR_VERSION = "3"
MAD_TO_SIGMA = 1.4826
MEDIAN_SE = 1.2533  # the standard error of a median of n normal values is 1.2533 sigma / sqrt(n)

STATUS_OK = "ok"
STATUS_INSUFFICIENT = "insufficient_history"
TYPE_SPIKE, TYPE_DROP, TYPE_NEW_SPEND = "spike", "drop", "new_spend"


@dataclass(frozen=True)
class DetectorParams:
    """Every parameter of the detector, in one place (settings `AISPEND_ANOMALY_*` override some)."""

    window_days: int = 56  # trailing days of the level median (and of 'new spend')
    spread_days: int = 84  # trailing days of the spread (longer: a steadier estimate, fewer false alerts)
    weekday_weeks: int = 8  # same weekdays in the weekday offset
    min_history_days: int = 14  # fewer days of history: status insufficient_history, never a flag
    score_threshold: float = 3.5  # robust z-score on the log scale
    min_scale: float = 0.1  # floor of the spread (about 10%), for flat series
    min_impact_usd: float = 10.0  # a flag needs cost - expected >= this ...
    min_impact_pct: float = 0.2  # ... and >= this share of expected
    new_spend_min_usd: float = 10.0  # a day at least this large after a quiet window is 'new_spend'
    direction: str = "up"  # 'up': spikes only; 'both': drops too
    sustained_threshold: float = 2.5  # two days in a row above this score (and the floor) also flag (0: off)
    shift_window_days: int = 7  # a level shift is adopted once the median of these days ...
    level_shift_ratio: float = 1.5  # ... differs from the long median by this factor (0: never)
    weekend_offsets: bool = True  # one offset for Mon-Fri, one for Sat-Sun (False: one per weekday) ...
    weekday_z: float = 3.0  # ... unless a weekday's own offset is this many standard errors away from it
    pair_threshold: float = 2.8  # two-day sum: (score[t-1] + score[t]) / sqrt(2) above this also flags (0: off) ...
    pair_min_pct: float = 0.5  # ... when each of the two days is at least this share above its expected
    shift_quantile: float = 0.1  # ... and the recent median outside these quantiles of the days before (0: off)
    regime_windows: bool = True  # after a shift, the level median reads only days since it: 7, 14, 28, then 56
    spread_clip: float = 2.5  # spread: rms of deviations clipped at this many MAD sigmas (0: the MAD alone)
    pair_own_spread: bool = True  # the two-day sum over its own spread (False: sqrt(2) x the daily one)
    small_floor_usd: float = 10.0  # below this expected cost the dollar floor grows as sqrt(it / expected) (0: off)

    @property
    def history_days_needed(self) -> int:
        """Days before a scored day that its statistics can reach.

        The level reaches two windows back (a shift's start, then the medians that found it), the offsets
        their weeks plus a spread, and the clipped spreads two spreads (the MAD that clips, then the rms)."""
        return 2 * self.window_days + 7 * self.weekday_weeks + 7 + 3 * self.spread_days + 1

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Scores:
    """Per-day, per-series results; each attribute is a (days x series) frame aligned with the input."""

    expected: pd.DataFrame
    lower: pd.DataFrame
    upper: pd.DataFrame
    score: pd.DataFrame
    history_days: pd.DataFrame
    is_anomaly: pd.DataFrame
    anomaly_type: pd.DataFrame
    status: pd.DataFrame
    below_floor: pd.DataFrame  # unusual by score, but the impact is below the floor


BOTTLENECK_WINDOWS = {"median": bn.move_median, "sum": bn.move_sum, "mean": bn.move_mean, "max": bn.move_max}


def _trailing(frame: pd.DataFrame, days: int, how: str, *args: float) -> pd.DataFrame:
    """The statistic over the `days` days before each day (the day itself excluded).

    Medians, sums, means and maxima come from bottleneck's moving windows over the whole (days x series)
    array at once (NaNs skipped, as pandas' rolling windows with `min_periods=1`), ~5x faster than pandas'
    per-column loop, which was most of the detector's time; quantiles stay with pandas."""
    if how in BOTTLENECK_WINDOWS:
        values = BOTTLENECK_WINDOWS[how](frame.to_numpy(dtype=float), days, min_count=1, axis=0)
        return pd.DataFrame(values, frame.index, frame.columns).shift(1)
    rolling = frame.rolling(days, min_periods=1)
    return getattr(rolling, how)(*args).shift(1)


def _level(y: pd.DataFrame, p: DetectorParams) -> pd.DataFrame:
    """The trailing median level, or a recent one after a lasting shift."""
    level = _trailing(y, p.window_days, "median")
    if p.level_shift_ratio <= 1:
        return level
    recent = _trailing(y, p.shift_window_days, "median")
    gap = (recent - level).abs()
    shifted = gap > np.log(p.level_shift_ratio)
    if p.shift_quantile > 0:  # and the recent median is outside the long window's usual range
        earlier = y.shift(p.shift_window_days)  # the days before the recent ones
        before = p.window_days - p.shift_window_days
        high = _trailing(earlier, before, "quantile", 1 - p.shift_quantile)
        low = _trailing(earlier, before, "quantile", p.shift_quantile)
        shifted &= (recent > high) | (recent < low)
    if not p.regime_windows:
        return level.mask(shifted, recent)
    starts = shifted & ~shifted.shift(1, fill_value=False)
    day = pd.DataFrame(np.broadcast_to(np.arange(len(y), dtype=float)[:, None], y.shape), y.index, y.columns)
    age = day - day.where(starts).ffill(limit=p.window_days)
    windows = [p.shift_window_days]
    while 2 * windows[-1] < p.window_days:
        windows.append(2 * windows[-1])
    reach = age + p.shift_window_days  # days since the shift (it shows in the recent median about 4 days in)
    out = level
    for shortest, longer in zip(windows, [*windows[1:], p.window_days], strict=True):
        median = recent if shortest == p.shift_window_days else _trailing(y, shortest, "median")
        out = out.mask((reach >= shortest) & (reach < longer), median)  # the longest window since the shift
    return out


def _spread(deviation: pd.DataFrame, p: DetectorParams, smallest: float | None = None) -> pd.DataFrame:
    """The robust spread of the de-seasonalised deviations, floored at `min_scale`."""
    smallest = p.min_scale if smallest is None else smallest
    mad = _trailing(deviation.abs(), p.spread_days, "median") * MAD_TO_SIGMA
    scale = mad.fillna(smallest).clip(lower=smallest)
    if p.spread_clip <= 0:
        return scale
    c = p.spread_clip
    phi, tail = np.exp(-c * c / 2) / np.sqrt(2 * np.pi), 0.5 * math.erfc(c / np.sqrt(2))
    clipped_mean_square = (1 - 2 * tail) - 2 * c * phi + 2 * c * c * tail  # E[min(z^2, c^2)] for normal z
    clipped = deviation.clip(lower=-c * scale, upper=c * scale) ** 2
    rms = np.sqrt(_trailing(clipped, p.spread_days, "mean") / clipped_mean_square)
    return rms.fillna(smallest).clip(lower=smallest)


def _offsets(residual: pd.DataFrame, p: DetectorParams, groups: list[list[int]]) -> pd.DataFrame:
    """Median residual of the last `weekday_weeks` weeks' days of the same group of weekdays."""
    offset = pd.DataFrame(np.nan, index=residual.index, columns=residual.columns)
    weekdays = pd.DatetimeIndex(residual.index).weekday
    for group in groups:
        rows = np.isin(weekdays, group)
        offset.loc[rows] = _trailing(residual.loc[rows], p.weekday_weeks * len(group), "median").to_numpy()
    return offset


def score_matrix(
    cost: pd.DataFrame,
    active: pd.DataFrame,
    params: DetectorParams,
    covered: pd.DataFrame | None = None,
) -> Scores:
    """Score every day of every series.

    `cost`: usage cost per day (rows: a dense range of days, columns: series), zeros where nothing was
    spent. `active`: True from each series' first day with usage (earlier days are not history).
    `covered`: True where the provider had data for the day at all (None: always); `new_spend` needs the
    provider covered for `min_history_days` of the trailing window, so the first days of a new warehouse
    are not all "new".
    """
    p = params
    active = active.astype(bool)
    y = np.log1p(cost.clip(lower=0)).where(active)
    level = _level(y, p)
    residual = y - level
    offset = _offsets(residual, p, [[d] for d in range(7)])
    if p.weekend_offsets:  # pooled offsets are steadier; a weekday that really differs keeps its own
        pooled = _offsets(residual, p, [[0, 1, 2, 3, 4], [5, 6]])
        sigma = _trailing((residual - offset).abs(), p.spread_days, "median") * MAD_TO_SIGMA
        standard_error = MEDIAN_SE * sigma.clip(lower=p.min_scale) / np.sqrt(p.weekday_weeks)
        offset = pooled.where((offset - pooled).abs() <= p.weekday_z * standard_error, offset)
    expected_log = level + offset.fillna(0.0)
    deviation = y - expected_log
    scale = _spread(deviation, p)
    score = deviation / scale

    expected = np.expm1(expected_log).clip(lower=0.0)
    upper = np.expm1(expected_log + p.score_threshold * scale)
    lower = np.expm1(expected_log - p.score_threshold * scale).clip(lower=0.0)
    impact = cost - expected
    floor = np.maximum(p.min_impact_usd, p.min_impact_pct * expected)
    if p.small_floor_usd > 0:
        floor = np.maximum(floor, p.min_impact_usd * np.sqrt(p.small_floor_usd / expected.clip(lower=0.01)))
    history = _trailing(active.astype(float), p.window_days, "sum").fillna(0.0)
    enough = history >= p.min_history_days

    unusual_up = score > p.score_threshold
    material = impact >= floor
    spike = enough & unusual_up & material
    if p.sustained_threshold > 0:  # a moderate rise that lasts: a level shift on a noisy series
        raised = enough & material & (score > p.sustained_threshold)
        spike = spike | (raised & raised.shift(1, fill_value=False))
    if p.pair_threshold > 0:
        if p.pair_own_spread:  # the two-day sum scored against its own spread (catches correlated days)
            two_days = deviation + deviation.shift(1)
            pair = two_days / _spread(two_days, p, np.sqrt(2) * p.min_scale)
        else:
            pair = (score + score.shift(1)) / np.sqrt(2)
        two_day_impact = impact + impact.shift(1)
        rise = impact >= p.pair_min_pct * expected  # each of the two days well above its own expected
        big = (two_day_impact >= 2 * floor) & rise & rise.shift(1, fill_value=False)
        paired = enough & material & (score > 0) & (pair > p.pair_threshold) & big
        spike = spike | paired
    drop = enough & (score < -p.score_threshold) & (-impact >= floor) & (p.direction == "both")
    quiet_before = _trailing(cost.where(active, 0.0), p.window_days, "max").fillna(0.0) < p.new_spend_min_usd
    if covered is None:
        provider_known = pd.DataFrame(True, index=cost.index, columns=cost.columns)
    else:
        provider_known = _trailing(covered.astype(float), p.window_days, "sum").fillna(0.0) >= p.min_history_days
    new_spend = active & (cost >= p.new_spend_min_usd) & quiet_before & ((~enough & provider_known) | (enough & spike))

    kind = pd.DataFrame(None, index=cost.index, columns=cost.columns, dtype=object)
    kind = kind.mask(drop, TYPE_DROP).mask(spike, TYPE_SPIKE).mask(new_spend, TYPE_NEW_SPEND)
    status = pd.DataFrame(STATUS_OK, index=cost.index, columns=cost.columns).mask(~enough, STATUS_INSUFFICIENT)
    below_floor = enough & unusual_up & ~spike
    return Scores(
        expected=expected,
        lower=lower,
        upper=upper,
        score=score,
        history_days=history,
        is_anomaly=spike | drop | new_spend,
        anomaly_type=kind,
        status=status,
        below_floor=below_floor,
    )
