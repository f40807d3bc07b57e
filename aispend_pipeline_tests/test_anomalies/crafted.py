"""Crafted daily series in a DuckDB file, rolled up by the pipeline's own SQL."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import duckdb
import pandas as pd

from aispend_pipeline.marts.team_daily_spend import TEAM_DAILY_SPEND_SQL
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS, TEAM_DAILY_SPEND
from aispend_pipeline.warehouse.duckdb import _insert_frame
from aispend_pipeline_tests.ids import line_uuid

START = date(2026, 1, 5)  # a Monday


@dataclass
class Ledger:
    """Writes cost lines for a team/provider and rebuilds the rollup for the days written."""

    con: duckdb.DuckDBPyConnection

    def lines(
        self,
        team: str,
        provider: str,
        amounts: Iterable[float | Decimal],
        start: date = START,
        category: str = "Usage",
        model: str | None = "gpt-4o",
    ) -> None:
        rows = []
        for offset, amount in enumerate(amounts):
            day = start + timedelta(days=offset)
            line_id = line_uuid(f"{team}|{provider}|{day}|{category}|{model}")
            rows.append(
                {
                    "cost_line_id": line_id,
                    "line_id": line_id,
                    "usage_date": pd.Timestamp(day),
                    "provider": provider,
                    "service": provider,
                    "charge_category": category,
                    "model": model,
                    "project_id": f"proj_{team}",
                    "cost_usd": str(Decimal(str(amount)).quantize(Decimal("0.000001"))),
                    "data_lag": "daily",
                    "cost_source": "billed",
                    "team": team,
                    "allocation_method": "direct",
                    "allocation_share": "1",
                }
            )
        frame = pd.DataFrame(rows)
        self.con.execute(
            f"DELETE FROM {COST_LINE_ITEMS.qualified_name} WHERE cost_line_id IN (SELECT CAST(unnest($ids) AS UUID))",
            {"ids": list(frame["cost_line_id"])},
        )
        _insert_frame(self.con, COST_LINE_ITEMS, frame)
        first, last = frame["usage_date"].min().date(), frame["usage_date"].max().date() + timedelta(days=1)
        self.con.execute(
            f"DELETE FROM {TEAM_DAILY_SPEND.qualified_name} WHERE usage_date >= $start AND usage_date < $end",
            {"start": first, "end": last},
        )
        names = ", ".join(TEAM_DAILY_SPEND.column_names)
        self.con.execute(
            f"INSERT INTO {TEAM_DAILY_SPEND.qualified_name} ({names}) SELECT {names} FROM ({TEAM_DAILY_SPEND_SQL})",
            {"start": first, "end": last},
        )

    def anomalies(self, team: str | None = None) -> pd.DataFrame:
        where = "WHERE team = $team" if team else ""
        return self.con.execute(
            f"SELECT * FROM main.spend_anomalies {where} ORDER BY usage_date, team, provider",
            {"team": team} if team else {},
        ).df()


def steady(days: int, level: float, noise: float = 0.05, weekend: float = 1.0, seed: int = 1) -> list[float]:
    """A deterministic series: `level` on weekdays, `level * weekend` on weekends, +-noise."""
    import random

    rng = random.Random(seed)
    values = []
    for offset in range(days):
        day = START + timedelta(days=offset)
        factor = weekend if day.weekday() >= 5 else 1.0
        values.append(round(level * factor * rng.uniform(1 - noise, 1 + noise), 6))
    return values
