"""`aispend demo`: the real clients and the whole pipeline against bundled local simulators.

No credentials and no network: the simulator of every registered API source serves a synthetic
organisation on 127.0.0.1, and the example seeds attribute its spend to teams.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from aispend_pipeline.anomalies.build import SPEND_ANOMALIES
from aispend_pipeline.core.money import round_to_cent
from aispend_pipeline.export.focus import export_focus
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS, TEAM_DAILY_SPEND
from aispend_pipeline.settings import DEFAULT_DUCKDB_PATH, DEFAULT_SEEDS_DIR, report_path
from aispend_pipeline.simulators import start_simulators
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

FOCUS_FILE = "aispend-focus.csv"  # written beside the DuckDB file
EXAMPLE_SEEDS = Path(__file__).resolve().parent.parent / "seeds"
# Never let an SDK look for cloud credentials on a metadata address while the demo runs.
NO_METADATA_PROBES = {"AWS_EC2_METADATA_DISABLED": "true", "NO_GCE_CHECK": "true", "AZURE_TOKEN_CREDENTIALS": "dev"}


def run_demo(days: int) -> int:
    from aispend_pipeline.cli import check_range, materialize, today_utc

    last = today_utc() - timedelta(days=1)
    first = last - timedelta(days=max(days, 1) - 1)
    problem = check_range(first, last)
    if problem:
        print(f"aispend demo: {problem}", file=sys.stderr)
        return 2
    if not os.environ.get("AISPEND_SEEDS_DIR") and not Path(DEFAULT_SEEDS_DIR).is_dir() and EXAMPLE_SEEDS.is_dir():
        os.environ["AISPEND_SEEDS_DIR"] = str(EXAMPLE_SEEDS)
    started = time.monotonic()
    with start_simulators(spike_day=last - timedelta(days=4)) as sims:
        os.environ.update({**NO_METADATA_PROBES, **sims.env})
        print(f"aispend demo: simulators of {', '.join(sims.simulators)} on 127.0.0.1")
        ok, reason = materialize(first, last, log_level="WARNING")
        requests = sims.request_counts()
    if not ok:
        print(f"aispend demo: the pipeline failed: {reason}", file=sys.stderr)
        return 1
    database = Path(os.environ.get("AISPEND_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH)
    print(summary(DuckDBWarehouse(database, read_only=True), first, last, requests, time.monotonic() - started))
    focus = export_focus(database, first, last, database.parent / FOCUS_FILE)
    print(f"  FOCUS file: {focus.path.resolve()}  ({focus.rows} rows; `aispend export focus` writes others)")
    return 0


def _usd(amount: Decimal) -> str:
    return f"{round_to_cent(amount):,.2f}"


def summary(warehouse: DuckDBWarehouse, first: date, last: date, requests: dict[str, int], seconds: float) -> str:
    params = {"start": first, "end": last + timedelta(days=1)}
    spend, lines_table = TEAM_DAILY_SPEND.qualified_name, COST_LINE_ITEMS.qualified_name
    where = "WHERE usage_date >= $start AND usage_date < $end"
    providers = warehouse.rows(
        f"SELECT provider, sum(cost_usd) FROM {spend} {where} GROUP BY 1 ORDER BY 2 DESC", params
    )
    teams = warehouse.rows(
        f"SELECT team, sum(cost_usd) FROM {spend} {where} GROUP BY 1 ORDER BY 2 DESC LIMIT 6", params
    )
    monthly = f"SELECT DISTINCT provider FROM {lines_table} WHERE data_lag = 'monthly'"
    peak = warehouse.rows(
        f"SELECT usage_date, team, provider, cost_usd FROM {spend} {where} AND provider NOT IN ({monthly}) "
        "ORDER BY cost_usd DESC LIMIT 1",
        params,
    )
    flagged = warehouse.rows(
        f"SELECT usage_date, team, provider, anomaly_type, reason FROM {SPEND_ANOMALIES.qualified_name} "
        f"{where} AND is_anomaly ORDER BY usage_date DESC, team, provider",
        params,
    )
    total = sum((amount for _, amount in providers), Decimal(0))
    lines = [
        f"\nAI spend {first} .. {last} ({(last - first).days + 1} days): {_usd(total)} USD",
        "  by provider:",
        *(f"    {p:<16} {_usd(a):>16}" for p, a in providers),
        "  top teams:",
        *(f"    {t:<16} {_usd(a):>16}" for t, a in teams),
    ]
    if peak:
        day, team, provider, amount = peak[0]
        lines.append(f"  largest team-day: {day} {team} on {provider}: {_usd(amount)} USD")
    lines.append(f"  flagged anomalies: {len(flagged)}" + ("" if flagged else " (none)"))
    lines += [f"    {day} {team} on {provider} ({kind}): {reason}" for day, team, provider, kind, reason in flagged[:8]]
    lines += [
        f"  API requests: {', '.join(f'{k} {v}' for k, v in requests.items())}; wall time {seconds:.1f} s",
        f"  DuckDB file: {warehouse.path.resolve()}",
        "    (tables cost_line_items, team_daily_spend, unit_costs, spend_anomalies, focus_cost_and_usage, ...)",
        f"  report: {report_path(warehouse.path).resolve()}  (open it in a browser)",
    ]
    return "\n".join(lines)
