"""`main.spend_anomalies`: every evaluated (day, team, provider) of a range, scored on Usage charges only.

`build_spend_anomalies` is a plain function over an open DuckDB connection: it reads the history it needs
from `main.team_daily_spend` in the same connection (so a one-day run scores yesterday exactly as a
backfill would) and replaces the rows of [start, end), so a restated day updates its row and re-running a
range changes nothing. Its writes are one transaction, or part of the caller's when one is open, so the
caller decides when the connection's work is published.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

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
    score_matrix,
)
from aispend_pipeline.schemas.line_items import TEAM_DAILY_SPEND
from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.warehouse.duckdb import _ensure

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


@dataclass
class BuildSummary:
    """What a build stored: counts for run metadata and the flagged rows for the UI and alerts."""

    start: date
    end: date
    rows: int = 0
    flagged: int = 0
    insufficient_history: int = 0
    flagged_rows: pd.DataFrame = field(default_factory=pd.DataFrame)


def in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the caller has a transaction open: outside one, every statement gets its own id.

    (A second BEGIN would abort the caller's transaction, so it cannot be used as the probe.)"""
    probe = "SELECT txid_current()"
    return con.execute(probe).fetchone()[0] == con.execute(probe).fetchone()[0]


@contextmanager
def atomically(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in one transaction, or inside the caller's when one is already open."""
    if in_transaction(con):
        yield
        return
    con.begin()
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
    scored = scored_rows(con, start, end, params)
    table, names = SPEND_ANOMALIES.qualified_name, ", ".join(SPEND_ANOMALIES.column_names)
    window = {"start": start, "end": end}
    with atomically(con):
        con.execute(f"DELETE FROM {table} WHERE usage_date >= $start AND usage_date < $end", window)
        if len(scored):
            con.register("scored_days", scored)
            try:
                con.execute(f"INSERT INTO {table} ({names}) {_rows_sql(params)}")
            finally:
                con.unregister("scored_days")
    rows, flagged, insufficient = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE is_anomaly), count(*) FILTER (WHERE status = $insufficient) "
        f"FROM {table} WHERE usage_date >= $start AND usage_date < $end",
        {**window, "insufficient": STATUS_INSUFFICIENT},
    ).fetchone()
    flagged_rows = con.execute(
        f"SELECT usage_date, team, provider, CAST(cost_usd AS VARCHAR) AS cost_usd, "
        f"CAST(expected_usd AS VARCHAR) AS expected_usd, anomaly_type, reason FROM {table} "
        "WHERE is_anomaly AND usage_date >= $start AND usage_date < $end ORDER BY usage_date DESC, team, provider",
        window,
    ).df()
    return BuildSummary(start, end, int(rows), int(flagged), int(insufficient), flagged_rows)


def scored_rows(con: duckdb.DuckDBPyConnection, start: date, end: date, params: DetectorParams) -> pd.DataFrame:
    """The evaluated (day, team, provider) of [start, end) with the detector's figures (nothing written).

    History is read from the stored rollup: `params.history_days_needed` days before `start`, and each
    series' first day with usage from the whole table (days before it are not history)."""
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
        return pd.DataFrame()
    daily["usage_date"] = pd.to_datetime(daily["usage_date"])
    days = pd.date_range(history_start, end - timedelta(days=1), freq="D")
    cost = daily.set_index(["usage_date", "team", "provider"])["cost"].unstack(["team", "provider"])
    cost = cost.reindex(days).fillna(0.0)
    series = cost.columns
    first = pd.to_datetime(first_usage.set_index(["team", "provider"])["first_day"].reindex(series))
    active_values = days.to_numpy()[:, None] >= first.to_numpy(dtype="datetime64[ns]")[None, :]  # NaT: never
    active = pd.DataFrame(active_values, index=days, columns=series)
    present = daily.groupby(["usage_date", "provider"]).size().unstack(fill_value=0).reindex(days, fill_value=0) > 0
    covered = present.reindex(columns=series.get_level_values("provider")).set_axis(series, axis=1)
    scores = score_matrix(cost, active, params, covered)

    rows = daily[daily["usage_date"] >= pd.Timestamp(start)]
    day_at = (rows["usage_date"] - pd.Timestamp(history_start)).dt.days.to_numpy()
    series_at = series.get_indexer(pd.MultiIndex.from_frame(rows[["team", "provider"]]))
    evaluated = active.to_numpy()[day_at, series_at]
    rows, day_at, series_at = rows[evaluated], day_at[evaluated], series_at[evaluated]

    def pick(frame: pd.DataFrame) -> np.ndarray:
        return frame.to_numpy()[day_at, series_at]

    return pd.DataFrame(
        {
            "usage_date": rows["usage_date"].to_numpy(),
            "team": rows["team"].to_numpy(),
            "provider": rows["provider"].to_numpy(),
            "cost_text": rows["cost_text"].to_numpy(),
            "expected": np.round(pick(scores.expected).astype(float), 2),
            "lower": np.round(pick(scores.lower).astype(float), 2),
            "upper": np.round(pick(scores.upper).astype(float), 2),
            "score": pick(scores.score).astype(float),
            "is_anomaly": pick(scores.is_anomaly).astype(bool),
            "anomaly_type": pick(scores.anomaly_type),
            "status": pick(scores.status),
            "history_days": pick(scores.history_days).astype(int),
            "below_floor": pick(scores.below_floor).astype(bool),
        }
    )


def _usd_sql(expression: str) -> str:
    """Whole dollars when large, cents when small: what a reader needs at a glance."""
    value = f"CAST({expression} AS DOUBLE)"
    return f"CASE WHEN abs({value}) >= 100 THEN format('${{:,.0f}}', {value}) ELSE format('${{:,.2f}}', {value}) END"


def _rows_sql(params: DetectorParams) -> str:
    """The table's rows from `scored_days`: exact decimals, impact, severity and the reason, set-based."""
    p = params
    cents = "CAST(CAST({} AS DECIMAL(18, 2)) AS " + DECIMAL + ")"
    reason = f"""CASE
        WHEN is_anomaly AND anomaly_type = '{TYPE_NEW_SPEND}' THEN 'new spend: ' || {_usd_sql("cost_usd")}
            || ', the first day of {_dollars(p.new_spend_min_usd)} or more in {p.window_days} days'
        WHEN is_anomaly AND anomaly_type = '{TYPE_DROP}' THEN {_usd_sql("cost_usd")} || ', '
            || format('{{:.0f}}', -100 * impact_pct) || '% below the usual ' || {_usd_sql("expected_usd")}
            || ' for a ' || dayname(usage_date)
        WHEN is_anomaly AND expected_usd >= 0.01 THEN format('{{:.1f}}', CAST(cost_usd / expected_usd AS DOUBLE))
            || 'x the usual ' || {_usd_sql("expected_usd")} || ' for a ' || dayname(usage_date)
            || ' (+' || {_usd_sql("impact_usd")} || ', score ' || format('{{:.1f}}', score) || ')'
        WHEN is_anomaly THEN {_usd_sql("cost_usd")} || ' where almost nothing is usual for a ' || dayname(usage_date)
        WHEN status = '{STATUS_INSUFFICIENT}' THEN 'not scored: ' || history_days || ' days of history, '
            || '{p.min_history_days} needed'
        WHEN below_floor THEN 'unusual (score ' || format('{{:.1f}}', score) || ') but +' || {_usd_sql("impact_usd")}
            || ' is under the impact floor ({_dollars(p.min_impact_usd)} and {p.min_impact_pct:.0%} of '
            || {_usd_sql("expected_usd")} || ')'
        ELSE 'within the usual range for a ' || dayname(usage_date) || ' (' || {_usd_sql("lower_usd")} || ' to '
            || {_usd_sql("upper_usd")} || ')'
    END"""
    return f"""
    WITH figures AS (
        SELECT usage_date::DATE AS usage_date, team, provider, CAST(cost_text AS {DECIMAL}) AS cost_usd,
            {cents.format("expected")} AS expected_usd, {cents.format("lower")} AS lower_usd,
            {cents.format("upper")} AS upper_usd,
            CASE WHEN isfinite(score) THEN score END AS score, is_anomaly, anomaly_type, status,
            history_days, below_floor
        FROM scored_days
    ), impacts AS (
        SELECT *, cost_usd - expected_usd AS impact_usd,
            CASE WHEN expected_usd > 0 THEN CAST((cost_usd - expected_usd) / expected_usd AS DOUBLE) END AS impact_pct
        FROM figures
    )
    SELECT usage_date, team, provider, cost_usd, expected_usd, lower_usd, upper_usd, impact_usd, impact_pct, score,
        is_anomaly, CASE WHEN is_anomaly THEN anomaly_type END AS anomaly_type,
        CASE WHEN NOT is_anomaly THEN NULL WHEN impact_pct IS NULL OR impact_pct >= 0.5 THEN 'high'
            WHEN impact_pct >= 0.2 THEN 'medium' ELSE 'low' END AS severity,
        status, history_days, {reason} AS reason, '{METHOD}' AS method, '{DETECTOR_VERSION}' AS detector_version
    FROM impacts
    """


def _dollars(amount: float) -> str:
    return f"${amount:,.0f}"
