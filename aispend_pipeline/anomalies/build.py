"""`main.spend_anomalies`: every evaluated (day, team, provider) of a range, scored on Usage charges only.

`build_spend_anomalies` is a plain function over an open DuckDB connection: it reads the history it needs
from `main.team_daily_spend` in the same connection (so a one-day run scores yesterday exactly as a
backfill would) and replaces the rows of [start, end), so a restated day updates its row and re-running a
range changes nothing. It does not commit anything beyond its own statements: the caller decides when
the connection's work is published.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import duckdb
import numpy as np
import pandas as pd

from aispend_pipeline.anomalies.detector import (
    DETECTOR_VERSION,
    METHOD,
    STATUS_INSUFFICIENT,
    TYPE_DROP,
    TYPE_NEW_SPEND,
    TYPE_SPIKE,
    DetectorParams,
    Scores,
    score_matrix,
)
from aispend_pipeline.schemas.line_items import TEAM_DAILY_SPEND
from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.warehouse.duckdb import _ensure, _insert_frame

SPEND_ANOMALIES = Table(
    "main",
    "spend_anomalies",
    (
        Column("usage_date", "DATE", nullable=False),
        Column("team", nullable=False),
        Column("provider", nullable=False),
        Column("cost_usd", DECIMAL, nullable=False, description="Usage charges of the day (what is scored)."),
        Column("expected_usd", DECIMAL, description="Expected Usage cost (seasonal baseline), to the cent."),
        Column("lower_usd", DECIMAL, description="Lower bound of the usual range."),
        Column("upper_usd", DECIMAL, description="Upper bound of the usual range."),
        Column("impact_usd", DECIMAL, description="cost_usd - expected_usd."),
        Column("impact_pct", "DOUBLE", description="impact_usd / expected_usd (NULL when nothing is expected)."),
        Column("score", "DOUBLE", description="Robust z-score on the log scale."),
        Column("is_anomaly", "BOOLEAN", nullable=False),
        Column("anomaly_type", allowed=(TYPE_SPIKE, TYPE_DROP, TYPE_NEW_SPEND), description="When flagged."),
        Column("severity", allowed=("low", "medium", "high"), description="By impact %: <20%, 20-50%, >=50%."),
        Column("status", nullable=False, description="ok or insufficient_history."),
        Column("history_days", "INTEGER", description="Days of history in the trailing window."),
        Column("reason", nullable=False, description="Why, in words: '3.4x the usual $120 for a Tuesday'."),
        Column("method", nullable=False),
        Column("detector_version", nullable=False),
    ),
    description="One row per evaluated (day, team, provider): Usage cost vs its seasonal baseline, flagged or not.",
    unique_key=("usage_date", "team", "provider"),
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CENT = Decimal("0.01")


@dataclass
class BuildSummary:
    """What a build stored: counts for run metadata and the flagged rows for the UI and alerts."""

    start: date
    end: date
    rows: int = 0
    flagged: int = 0
    insufficient_history: int = 0
    flagged_rows: pd.DataFrame = field(default_factory=pd.DataFrame)


@contextmanager
def atomically(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in one transaction, or inside the caller's when one is already open."""
    try:
        con.begin()
    except duckdb.TransactionException:  # the caller's transaction decides
        yield
        return
    try:
        yield
    except BaseException:
        con.rollback()
        raise
    con.commit()


def build_spend_anomalies(
    con: duckdb.DuckDBPyConnection, start: date, end: date, params: DetectorParams | None = None
) -> BuildSummary:
    """Score the days [start, end) and replace their rows in main.spend_anomalies."""
    params = params or DetectorParams()
    _ensure(con, TEAM_DAILY_SPEND)
    _ensure(con, SPEND_ANOMALIES)
    frame = anomaly_rows(con, start, end, params)
    with atomically(con):
        con.execute(
            f"DELETE FROM {SPEND_ANOMALIES.qualified_name} WHERE usage_date >= $start AND usage_date < $end",
            {"start": start, "end": end},
        )
        _insert_frame(con, SPEND_ANOMALIES, frame)
    flagged = frame[frame["is_anomaly"]] if len(frame) else frame
    return BuildSummary(
        start=start,
        end=end,
        rows=len(frame),
        flagged=len(flagged),
        insufficient_history=int((frame["status"] == STATUS_INSUFFICIENT).sum()) if len(frame) else 0,
        flagged_rows=flagged[["usage_date", "team", "provider", "cost_usd", "expected_usd", "anomaly_type", "reason"]]
        if len(frame)
        else pd.DataFrame(),
    )


def anomaly_rows(con: duckdb.DuckDBPyConnection, start: date, end: date, params: DetectorParams) -> pd.DataFrame:
    """The spend_anomalies rows of [start, end), computed from the stored rollup (nothing written)."""
    history_start = start - timedelta(days=params.history_days_needed)
    spend = TEAM_DAILY_SPEND.qualified_name
    daily = con.execute(
        f"SELECT usage_date, team, provider, CAST(usage_cost_usd AS VARCHAR) AS cost_text, "
        f"CAST(usage_cost_usd AS DOUBLE) AS cost FROM {spend} "
        "WHERE usage_date >= $history_start AND usage_date < $end",
        {"history_start": history_start, "end": end},
    ).df()
    first_usage = con.execute(
        f"SELECT team, provider, min(usage_date) AS first_day FROM {spend} "
        "WHERE usage_cost_usd <> 0 AND usage_date < $end GROUP BY ALL",
        {"end": end},
    ).df()
    if daily.empty or first_usage.empty:
        return pd.DataFrame(columns=SPEND_ANOMALIES.column_names)
    daily["usage_date"] = pd.to_datetime(daily["usage_date"])
    days = pd.date_range(history_start, end - timedelta(days=1), freq="D")
    cost = (
        daily.pivot_table(index="usage_date", columns=["team", "provider"], values="cost", aggfunc="sum")
        .reindex(days)
        .fillna(0.0)
    )
    series = cost.columns
    first = first_usage.set_index(["team", "provider"])["first_day"].reindex(series)
    first_days = pd.to_datetime(first).to_numpy(dtype="datetime64[ns]")
    active_values = days.to_numpy()[:, None] >= first_days[None, :]  # NaT compares False: never active
    active = pd.DataFrame(active_values, index=days, columns=series)
    present = daily.groupby(["usage_date", "provider"]).size().unstack(fill_value=0).reindex(days, fill_value=0) > 0
    covered = present.reindex(columns=series.get_level_values("provider")).set_axis(series, axis=1)
    scores = score_matrix(cost, active, params, covered)

    rows = daily[daily["usage_date"] >= pd.Timestamp(start)].reset_index(drop=True)
    day_at = ((rows["usage_date"] - pd.Timestamp(history_start)).dt.days).to_numpy()
    series_at = series.get_indexer(pd.MultiIndex.from_frame(rows[["team", "provider"]]))
    rows = rows[active.to_numpy()[day_at, series_at]].reset_index(drop=True)
    day_at = ((rows["usage_date"] - pd.Timestamp(history_start)).dt.days).to_numpy()
    series_at = series.get_indexer(pd.MultiIndex.from_frame(rows[["team", "provider"]]))
    return _table_rows(rows, scores, day_at, series_at, params)


def _pick(frame: pd.DataFrame, day_at: np.ndarray, series_at: np.ndarray) -> np.ndarray:
    return frame.to_numpy()[day_at, series_at]


def _cents(value: float) -> Decimal | None:
    """A float estimate as exact cents for a DECIMAL column (None when there is no estimate yet)."""
    return Decimal(repr(float(value))).quantize(CENT) if np.isfinite(value) else None


def _text(values: list[Decimal | None]) -> list[str | None]:
    return [None if v is None else str(v) for v in values]


def _table_rows(
    rows: pd.DataFrame, scores: Scores, day_at: np.ndarray, series_at: np.ndarray, params: DetectorParams
) -> pd.DataFrame:
    out = rows[["usage_date", "team", "provider"]].copy()
    cost = [Decimal(text) for text in rows["cost_text"]]
    expected = [_cents(v) for v in _pick(scores.expected, day_at, series_at)]
    impact = [None if e is None else c - e for c, e in zip(cost, expected, strict=True)]
    score = _pick(scores.score, day_at, series_at).astype(float)
    flagged = _pick(scores.is_anomaly, day_at, series_at).astype(bool)
    kind = _pick(scores.anomaly_type, day_at, series_at)
    status = _pick(scores.status, day_at, series_at)
    history = _pick(scores.history_days, day_at, series_at).astype(int)
    below_floor = _pick(scores.below_floor, day_at, series_at).astype(bool)
    lower = [_cents(v) for v in _pick(scores.lower, day_at, series_at)]
    upper = [_cents(v) for v in _pick(scores.upper, day_at, series_at)]
    impact_pct = [float(i / e) if e and i is not None else None for i, e in zip(impact, expected, strict=True)]
    out["cost_usd"] = _text(cost)
    out["expected_usd"] = _text(expected)
    out["lower_usd"] = _text(lower)
    out["upper_usd"] = _text(upper)
    out["impact_usd"] = _text(impact)
    out["impact_pct"] = pd.Series(impact_pct, dtype=object)
    out["score"] = pd.Series([float(s) if np.isfinite(s) else None for s in score], dtype=object)
    out["is_anomaly"] = flagged
    out["anomaly_type"] = [k if f else None for k, f in zip(kind, flagged, strict=True)]
    out["severity"] = [_severity(p) if f else None for p, f in zip(impact_pct, flagged, strict=True)]
    out["status"] = status
    out["history_days"] = history
    weekday = [WEEKDAYS[d.weekday()] for d in rows["usage_date"]]
    out["reason"] = [
        _reason(*values, params)
        for values in zip(
            kind,
            flagged,
            status,
            below_floor,
            cost,
            expected,
            lower,
            upper,
            impact,
            score,
            history,
            weekday,
            strict=True,
        )
    ]
    out["method"] = METHOD
    out["detector_version"] = DETECTOR_VERSION
    return out


def _severity(impact_pct: float | None) -> str:
    if impact_pct is None or impact_pct >= 0.5:
        return "high"
    return "medium" if impact_pct >= 0.2 else "low"


def _usd(amount: Decimal) -> str:
    """Whole dollars when large, cents when small: what a reader needs at a glance."""
    return f"${amount:,.0f}" if abs(amount) >= 100 else f"${amount:,.2f}"


def _reason(
    kind: str | None,
    flagged: bool,
    status: str,
    below_floor: bool,
    cost: Decimal,
    expected: Decimal,
    lower: Decimal,
    upper: Decimal,
    impact: Decimal,
    score: float,
    history: int,
    weekday: str,
    params: DetectorParams,
) -> str:
    """One sentence a person can act on."""
    if flagged and kind == TYPE_NEW_SPEND:
        return (
            f"new spend: {_usd(cost)}, the first day of ${params.new_spend_min_usd:,.0f} or more "
            f"in {params.window_days} days"
        )
    if flagged and kind == TYPE_DROP:
        return f"{_usd(cost)}, {-impact / expected:.0%} below the usual {_usd(expected)} for a {weekday}"
    if flagged:
        if expected >= CENT:
            return (
                f"{cost / expected:.1f}x the usual {_usd(expected)} for a {weekday} "
                f"(+{_usd(impact)}, score {score:.1f})"
            )
        return f"{_usd(cost)} where almost nothing is usual for a {weekday} (score {score:.1f})"
    if status == STATUS_INSUFFICIENT:
        return f"not scored: {history} days of history, {params.min_history_days} needed"
    if below_floor:
        return (
            f"unusual (score {score:.1f}) but +{_usd(impact)} is under the impact floor "
            f"(${params.min_impact_usd:,.0f} and {params.min_impact_pct:.0%} of {_usd(expected)})"
        )
    return f"within the usual range for a {weekday} ({_usd(lower)} to {_usd(upper)})"
