"""Which alerts a run raises: new anomaly runs and threshold breaches near the run's newest day.

Only days within `lookback_days` of the newest day alert, so a backfill of a year does not send a year
of alerts. Each alert has a stable identity (INTERFACE.md): an anomaly run is (team, provider, first day
of the run); a threshold breach is (team, provider, day). Delivery (`delivery.py`) sends each identity once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal

import duckdb

from aispend_pipeline.anomalies.build import SPEND_ANOMALIES
from aispend_pipeline.core.money import round_to_cent
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS, TEAM_DAILY_SPEND
from aispend_pipeline.seed_files import ALERT_THRESHOLDS_FILE, AlertThreshold
from aispend_pipeline.warehouse.duckdb import _ensure

KIND_ANOMALY, KIND_THRESHOLD = "anomaly", "threshold"
RUN_SEARCH_DAYS = 90  # how far back an ongoing run's first day is looked for
TOP_LINES = 3
# A line's label for people: model, then the project / workspace / account it ran in, then the key.
LINE_LABEL_SQL = (
    "coalesce(nullif(concat_ws(' / ', model, coalesce(project_id, workspace_id, gcp_project_id, account_id, "
    "subscription_id, resource_group), api_key_id), ''), charge_description, service)"
)


@dataclass(frozen=True)
class Alert:
    identity: str
    kind: str
    team: str
    provider: str
    day: date  # first day of the anomalous run, or the breached day
    last_day: date
    actual_usd: Decimal  # on the peak day (anomaly) or the day (threshold)
    expected_usd: Decimal | None  # the baseline (anomaly) or the limit (threshold)
    reason: str
    peak_day: date
    top_lines: tuple[tuple[str, Decimal], ...] = field(default=())

    @property
    def title(self) -> str:
        what = "AI spend anomaly" if self.kind == KIND_ANOMALY else "AI spend over its daily limit"
        return f"{what}: {self.team} on {self.provider}"

    @property
    def summary(self) -> str:
        span = f"{self.day}" if self.last_day == self.day else f"{self.day} .. {self.last_day}"
        if self.kind == KIND_THRESHOLD:
            return (
                f"{span}: ${round_to_cent(self.actual_usd):,} spent, over the daily limit of "
                f"${round_to_cent(self.expected_usd or Decimal(0)):,} ({self.reason})"
            )
        expected = "nothing" if self.expected_usd is None else f"${round_to_cent(self.expected_usd):,}"
        peak = "" if self.last_day == self.day else f" (peak {self.peak_day})"
        return f"{span}{peak}: ${round_to_cent(self.actual_usd):,} vs {expected} expected, {self.reason}"


def pending_alerts(
    con: duckdb.DuckDBPyConnection,
    newest_day: date,
    lookback_days: int,
    thresholds: Sequence[AlertThreshold] = (),
) -> list[Alert]:
    """Every alert whose days reach into [newest_day - lookback_days, newest_day], oldest first."""
    for table in (TEAM_DAILY_SPEND, COST_LINE_ITEMS, SPEND_ANOMALIES):
        _ensure(con, table)
    first_day = newest_day - timedelta(days=max(lookback_days, 0))
    alerts = [*_anomaly_runs(con, first_day, newest_day), *_breaches(con, first_day, newest_day, thresholds)]
    alerts = [_with_top_lines(con, alert) for alert in alerts]
    return sorted(alerts, key=lambda a: (a.day, a.kind, a.team, a.provider))


def _anomaly_runs(con: duckdb.DuckDBPyConnection, first_day: date, newest_day: date) -> list[Alert]:
    """One alert per run of consecutive flagged days that touches the lookback window."""
    rows = con.execute(
        f"SELECT team, provider, usage_date, cost_usd, expected_usd, impact_usd, reason "
        f"FROM {SPEND_ANOMALIES.qualified_name} WHERE is_anomaly AND usage_date >= $since AND usage_date <= $newest "
        "ORDER BY team, provider, usage_date",
        {"since": first_day - timedelta(days=RUN_SEARCH_DAYS), "newest": newest_day},
    ).fetchall()
    runs: list[list[tuple]] = []
    for row in rows:
        previous = runs[-1][-1] if runs else None
        if previous and previous[:2] == row[:2] and row[2] - previous[2] == timedelta(days=1):
            runs[-1].append(row)
        else:
            runs.append([row])
    alerts = []
    for run in runs:
        team, provider, start = run[0][:3]
        last = run[-1][2]
        if last < first_day:
            continue
        peak = max(run, key=lambda r: r[5] if r[5] is not None else r[3])
        alerts.append(
            Alert(
                identity=f"{KIND_ANOMALY}|{team}|{provider}|{start}",
                kind=KIND_ANOMALY,
                team=team,
                provider=provider,
                day=start,
                last_day=last,
                actual_usd=peak[3],
                expected_usd=peak[4],
                reason=peak[6],
                peak_day=peak[2],
            )
        )
    return alerts


def _breaches(
    con: duckdb.DuckDBPyConnection, first_day: date, newest_day: date, thresholds: Sequence[AlertThreshold]
) -> list[Alert]:
    """A day of a team above its limit: on one provider, or on all its providers for provider '*'."""
    alerts = []
    for limit in thresholds:
        rows = con.execute(
            f"SELECT usage_date, sum(cost_usd) FROM {TEAM_DAILY_SPEND.qualified_name} "
            "WHERE team = $team AND ($provider = '*' OR provider = $provider) "
            "AND usage_date >= $first AND usage_date <= $newest GROUP BY usage_date "
            "HAVING sum(cost_usd) > $limit ORDER BY usage_date",
            {
                "team": limit.team,
                "provider": limit.provider,
                "first": first_day,
                "newest": newest_day,
                "limit": limit.daily_limit_usd,
            },
        ).fetchall()
        for day, spent in rows:
            alerts.append(
                Alert(
                    identity=f"{KIND_THRESHOLD}|{limit.team}|{limit.provider}|{day}",
                    kind=KIND_THRESHOLD,
                    team=limit.team,
                    provider=limit.provider,
                    day=day,
                    last_day=day,
                    actual_usd=spent,
                    expected_usd=limit.daily_limit_usd,
                    reason=f"{spent / limit.daily_limit_usd:.1f}x the limit of {ALERT_THRESHOLDS_FILE} line "
                    f"{limit.line}",
                    peak_day=day,
                )
            )
    return alerts


def _with_top_lines(con: duckdb.DuckDBPyConnection, alert: Alert) -> Alert:
    """The cost lines that made the peak day: what to look at first."""
    usage_only = "AND charge_category = 'Usage'" if alert.kind == KIND_ANOMALY else ""
    rows = con.execute(
        f"SELECT {LINE_LABEL_SQL} AS line, sum(cost_usd) AS cost FROM {COST_LINE_ITEMS.qualified_name} "
        "WHERE team = $team AND ($provider = '*' OR provider = $provider) AND usage_date = $day "
        f"{usage_only} GROUP BY ALL ORDER BY cost DESC, line LIMIT {TOP_LINES}",
        {"team": alert.team, "provider": alert.provider, "day": alert.peak_day},
    ).fetchall()
    return replace(alert, top_lines=tuple((str(label), cost) for label, cost in rows))
