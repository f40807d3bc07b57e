"""Measure the spend anomaly detector on seeded, labelled synthetic daily series.

    .venv/bin/python benchmarks/anomaly_benchmark.py                 # the reported table (seed 2)
    .venv/bin/python benchmarks/anomaly_benchmark.py --seed 1 --grid  # the tuning sweep (seed 1)
    .venv/bin/python benchmarks/anomaly_benchmark.py --seed 3 --rules # each rule on its own (seeds 1, 2, 3)

There is no offline, spend-like labelled benchmark to download, so the series are generated: tiny
(a few dollars, many zero days), steady API, bursty, weekday-seasonal developer tools, seat-like
step changes, all with slow growth and log-normal noise, and some days whose cost lands partly on the next
day (late and restated data). Labelled events: spikes of several sizes (x1.5 to x8, 1 to 3 days) and
permanent level shifts (x1.8 to x3.5). Seat-like steps (+5..15%) and late-landing days are benign.

Metrics, for the default detector and for a naive rolling mean + 3 sigma:
- event recall: an event counts as detected when a flag falls on its first day or the day after;
- alert precision: a run of consecutive flagged days is one alert; it is true when it overlaps an
  event's labelled days (spike days, the first 3 days of a shift) or the day after them;
- F1, false alerts per series-year, median detection delay (days), runtime per 1,000 series-years.
Both detectors use the same impact floor (min $ and min % of expected). Scoring starts after a warm-up.
Defaults were tuned with `--grid` on seed 1; the tables in docs/anomalies.md are seeds 2 and 3.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from aispend_pipeline.anomalies.detector import DetectorParams, score_matrix

DAYS = 365
WARMUP = 56
MATERIAL_USD = 50.0
CLEAR_SIGMAS = 3.0  # an event whose impact is within the series' normal daily variation is not clearly detectable
RESTATED_SHARE = 0.05
KINDS = ("tiny", "steady_api", "bursty", "weekday_seasonal", "seat_like")


@dataclass(frozen=True)
class Event:
    series: int
    kind: str  # the series kind
    type: str  # spike or shift
    onset: int
    days: int  # labelled days
    factor: float
    impact_usd: float  # expected excess on the first day
    noise_usd: float = 0.0  # robust sigma of the series' daily cost over the 28 days before the event


def generate(series: int, seed: int, days: int = DAYS) -> tuple[pd.DataFrame, list[Event], list[str], np.ndarray]:
    """(cost matrix days x series, labelled events, kind of each series, restatement lag per day)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2025-01-06", periods=days, freq="D")
    weekday = index.weekday.to_numpy()
    columns, events, kinds, lags = [], [], [], []
    for s in range(series):
        kind = KINDS[s % len(KINDS)]
        kinds.append(kind)
        if kind == "tiny":
            level, sigma, weekend = rng.uniform(1, 4), rng.uniform(0.3, 0.8), rng.uniform(0.5, 1.0)
        elif kind == "steady_api":
            level, sigma, weekend = rng.lognormal(np.log(300), 0.6), rng.uniform(0.05, 0.15), rng.uniform(0.75, 1.0)
        elif kind == "bursty":
            level, sigma, weekend = rng.lognormal(np.log(150), 0.6), rng.uniform(0.25, 0.4), rng.uniform(0.6, 1.0)
        elif kind == "weekday_seasonal":
            level, sigma, weekend = rng.lognormal(np.log(80), 0.5), rng.uniform(0.1, 0.25), rng.uniform(0.15, 0.5)
        else:  # seat_like: usage that steps up and down as seats are added or removed at month starts
            level, sigma, weekend = rng.lognormal(np.log(120), 0.5), rng.uniform(0.05, 0.15), rng.uniform(0.3, 0.8)
        growth = (1 + rng.uniform(0, 0.015)) ** (np.arange(days) / 7)
        season = np.where(weekday >= 5, weekend, 1.0)
        base = level * growth * season
        if kind == "seat_like":
            steps = np.ones(days)
            for start in np.flatnonzero(index.day == 1):
                if rng.random() < 0.5:
                    steps[start:] *= rng.uniform(1.05, 1.15) if rng.random() < 0.7 else rng.uniform(0.87, 0.95)
            base = base * steps
        # events: 1-3 per series, at least 21 days apart, after the warm-up
        onsets = sorted(rng.choice(np.arange(WARMUP + 7, days - 7, 21), size=rng.integers(1, 4), replace=False))
        factor_day = np.ones(days)
        for onset in onsets:
            if rng.random() < 0.7:
                factor = float(rng.choice([2.0, 3.0, 5.0, 8.0]) * rng.uniform(0.9, 1.1))
                length = int(rng.integers(1, 4))
                factor_day[onset : onset + length] *= factor
                events.append(Event(s, kind, "spike", int(onset), length, factor, float(base[onset] * (factor - 1))))
            else:
                factor = float(rng.uniform(1.8, 3.5))
                events.append(Event(s, kind, "shift", int(onset), 3, factor, float(base[onset] * (factor - 1))))
                base = base.copy()
                base[onset:] *= factor
        cost = base * factor_day * rng.lognormal(0, sigma, days)
        if kind == "tiny":
            cost[rng.random(days) < 0.3] = 0.0
        for i, e in enumerate(events):
            if e.series == s:
                before = cost[e.onset - 28 : e.onset]
                noise = 1.4826 * float(np.median(np.abs(before - np.median(before))))
                events[i] = replace(e, noise_usd=noise)
        # restated days: first reported partial, completed 1-3 days later; the daily run re-scores its
        # restatement window, so a flag on such a day is raised only when the full value arrives
        restated = rng.random(days) < RESTATED_SHARE
        lags.append(np.where(restated, rng.integers(1, 4, days), 0))
        columns.append(np.round(cost, 6))
    frame = pd.DataFrame(np.array(columns).T, index=index)
    return frame, events, kinds, np.array(lags).T


def naive_flags(cost: pd.DataFrame, params: DetectorParams) -> pd.DataFrame:
    """Rolling 28-day mean + 3 sigma on the raw scale, with the same impact floor."""
    mean = cost.rolling(28, min_periods=14).mean().shift(1)
    std = cost.rolling(28, min_periods=14).std().shift(1)
    floor = np.maximum(params.min_impact_usd, params.min_impact_pct * mean)
    return (cost > mean + 3 * std) & (cost - mean >= floor)


def default_flags(cost: pd.DataFrame, params: DetectorParams) -> pd.DataFrame:
    active = pd.DataFrame(True, index=cost.index, columns=cost.columns)
    return score_matrix(cost, active, params).is_anomaly


def evaluate(
    flags: pd.DataFrame, events: list[Event], lags: np.ndarray, material_only: bool = False, clear_only: bool = False
) -> dict[str, float]:
    """The metrics; `clear_only`: material events whose impact exceeds 3 robust sigmas of daily cost."""
    values = flags.to_numpy().copy()
    values[:WARMUP] = False
    days, series = values.shape
    labelled = np.zeros_like(values)
    for e in events:
        labelled[e.onset : min(e.onset + e.days + 1, days), e.series] = True
    chosen = [e for e in events if e.impact_usd >= MATERIAL_USD] if material_only or clear_only else events
    if clear_only:
        chosen = [e for e in chosen if e.impact_usd > CLEAR_SIGMAS * e.noise_usd]
    delays = []
    for e in chosen:
        window = np.arange(e.onset, e.onset + 2)
        seen = window + lags[window, e.series]  # the day a flag is raised: when the full value arrives
        raised = seen[values[window, e.series] & (seen <= e.onset + 1)]
        if len(raised):
            delays.append(int(raised.min() - e.onset))
    starts = values & ~np.vstack([np.zeros((1, series), bool), values[:-1]])
    run_id = np.cumsum(starts, axis=0)
    cells = np.argwhere(values)
    runs = (
        pd.DataFrame({"series": cells[:, 1], "run": run_id[values], "true": labelled[values]})
        .groupby(["series", "run"])["true"]
        .any()
    )
    true_alerts, alerts = int(runs.sum()), len(runs)
    recall = len(delays) / len(chosen) if chosen else float("nan")
    precision = true_alerts / alerts if alerts else float("nan")
    series_years = series * (days - WARMUP) / 365
    return {
        "events": len(chosen),
        "recall": recall,
        "precision": precision,
        "f1": 2 * recall * precision / (recall + precision) if recall + precision else 0.0,
        "false_per_series_year": (alerts - true_alerts) / series_years,
        "median_delay_days": float(np.median(delays)) if delays else float("nan"),
        "alerts": alerts,
    }


def run(series: int, seed: int, params: DetectorParams) -> list[dict[str, object]]:
    cost, events, _, lags = generate(series, seed)
    rows = []
    for name, detector in (("log-median-weekday (default)", default_flags), ("rolling mean + 3 sigma", naive_flags)):
        started = time.perf_counter()
        flags = detector(cost, params)
        seconds = time.perf_counter() - started
        overall = evaluate(flags, events, lags)
        material = evaluate(flags, events, lags, material_only=True)
        clear = evaluate(flags, events, lags, clear_only=True)
        rows.append(
            {
                "detector": name,
                "recall (all events)": overall["recall"],
                f"recall (impact >= ${MATERIAL_USD:.0f})": material["recall"],
                f"recall (>= ${MATERIAL_USD:.0f} and > {CLEAR_SIGMAS:.0f} sigma)": clear["recall"],
                "precision": overall["precision"],
                "F1": overall["f1"],
                "false alerts / series-year": overall["false_per_series_year"],
                "median delay (days)": material["median_delay_days"],
                "seconds / 1,000 series-years": seconds / series * 1000 * DAYS / len(cost),
                "_flags": flags,
            }
        )
    rows[0]["_breakdown"] = breakdown(rows[0]["_flags"], events, lags)
    rows[0]["_events"] = (
        len(events),
        sum(e.impact_usd >= MATERIAL_USD for e in events),
        sum(e.impact_usd >= MATERIAL_USD and e.impact_usd > CLEAR_SIGMAS * e.noise_usd for e in events),
    )
    return rows


def breakdown(flags: pd.DataFrame, events: list[Event], lags: np.ndarray) -> pd.DataFrame:
    """Recall on material events by series kind and event type."""
    out = []
    by_kind = sorted(events, key=lambda e: (e.kind, e.type))
    for (kind, event_type), group in itertools.groupby(by_kind, lambda e: (e.kind, e.type)):
        result = evaluate(flags, list(group), lags, material_only=True)
        out.append(
            {"series": kind, "event": event_type, "material events": result["events"], "recall": result["recall"]},
        )
    return pd.DataFrame(out)


def markdown(rows: list[dict[str, object]]) -> str:
    keys = [k for k in rows[0] if not k.startswith("_")]
    lines = ["| " + " | ".join(keys) + " |", "|---|" + "---:|" * (len(keys) - 1)]
    for row in rows:
        cells = [str(row[keys[0]])] + [f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in keys[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _row(label: str, flags: pd.DataFrame, events: list[Event], lags: np.ndarray) -> str:
    every, material = evaluate(flags, events, lags), evaluate(flags, events, lags, material_only=True)
    return (
        f"| {label} | {every['recall']:.3f} | {material['recall']:.3f} | {every['precision']:.3f} "
        f"| {every['f1']:.3f} | {every['false_per_series_year']:.3f} |"
    )


def grid(series: int, seed: int) -> None:
    """The tuning sweep: one-day score threshold x two-day sum threshold x the two-day sum's per-day share."""
    cost, events, _, lags = generate(series, seed)
    print("| k, two-day sum k, each day's share | recall | recall >= $50 | precision | F1 | false / series-yr |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, pair, share in itertools.product((3.5, 3.75), (2.6, 2.8, 3.0, 3.1), (0.0, 0.3, 0.5, 0.7)):
        params = replace(DetectorParams(), score_threshold=k, pair_threshold=pair, pair_min_pct=share)
        print(_row(f"{k}, {pair}, {share:.0%}", default_flags(cost, params), events, lags))


# Each rule of the default detector turned off (or changed) on its own, and the previous defaults.
RULES: dict[str, dict[str, object]] = {
    "default": {},
    "version 1 defaults": {
        "spread_days": 56,
        "shift_quantile": 0.0,
        "regime_windows": False,
        "spread_clip": 0.0,
        "pair_own_spread": False,
        "small_floor_usd": 0.0,
        "score_threshold": 3.75,
        "pair_threshold": 3.75,
        "pair_min_pct": 0.0,
    },
    "version 2 defaults": {"pair_threshold": 3.1, "pair_min_pct": 0.0},
    "no level from the days since a shift (regime_windows off)": {"regime_windows": False},
    "no quantile test for a shift (shift_quantile 0)": {"shift_quantile": 0.0},
    "MAD spread, not clipped rms (spread_clip 0)": {"spread_clip": 0.0},
    "56-day spread": {"spread_days": 56},
    "two-day sum over sqrt(2) x the daily spread": {"pair_own_spread": False},
    "no growing floor on small series (small_floor_usd 0)": {"small_floor_usd": 0.0},
    "two-day sum without the per-day share (pair_min_pct 0)": {"pair_min_pct": 0.0},
    "two-day sum each day +30%": {"pair_min_pct": 0.3},
    "two-day sum each day +70%": {"pair_min_pct": 0.7},
    "two-day sum k 2.6": {"pair_threshold": 2.6},
    "two-day sum k 3.0": {"pair_threshold": 3.0},
    "one-day k 3.25": {"score_threshold": 3.25},
    "one-day k 3.75": {"score_threshold": 3.75},
}


def rules(series: int, seed: int) -> None:
    """Every rule measured on its own against the default detector."""
    cost, events, _, lags = generate(series, seed)
    print(f"seed {seed}, {series} series\n")
    print("| rule | recall | recall >= $50 | precision | F1 | false / series-yr |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, change in RULES.items():
        print(_row(label, default_flags(cost, replace(DetectorParams(), **change)), events, lags))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2, help="2 for the reported table; tune on 1")
    parser.add_argument("--grid", action="store_true", help="print the tuning sweep instead")
    parser.add_argument("--rules", action="store_true", help="print each rule turned off on its own instead")
    args = parser.parse_args()
    if args.grid or args.rules:
        (grid if args.grid else rules)(args.series, args.seed)
        return
    params = DetectorParams()
    rows = run(args.series, args.seed, params)
    events, material, clear = rows[0]["_events"]
    print(
        f"{args.series} series x {DAYS} days, seed {args.seed}: {events} labelled events, {material} with a "
        f"first-day impact >= ${MATERIAL_USD:.0f}, {clear} of them above {CLEAR_SIGMAS:.0f} robust sigmas of the "
        f"series' daily cost; scoring after {WARMUP} days; impact floor "
        f"${params.min_impact_usd:.0f} and {params.min_impact_pct:.0%}\n"
    )
    print(markdown(rows))
    print("\nDefault detector, recall on material events by series kind and event type:\n")
    print(rows[0]["_breakdown"].to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
