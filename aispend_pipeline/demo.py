"""`aispend demo`: the real clients and the whole pipeline against bundled local simulators.

No credentials and no network: the simulator of every registered API source serves a synthetic
organisation on 127.0.0.1, and seed files generated for the demo's own days (`simulators/demo_seeds.py`,
written to `demo-seeds/` beside the DuckDB file) attribute its spend to teams and add monthly invoices.
The demo always uses those generated seeds, whatever AISPEND_SEEDS_DIR says, and never writes into a
user's `seeds/`; it never posts alerts (AISPEND_ALERT_WEBHOOK_URL is ignored).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from aispend_pipeline.anomalies.build import SPEND_ANOMALIES
from aispend_pipeline.core.money import cents_adding_up, round_to_cent
from aispend_pipeline.export.focus import export_focus
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS, TEAM_DAILY_SPEND
from aispend_pipeline.settings import DEFAULT_DUCKDB_PATH, report_path
from aispend_pipeline.simulators import start_simulators
from aispend_pipeline.simulators.demo_seeds import DEMO_SEEDS_DIR, write_demo_seeds
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

FOCUS_FILE = "aispend-focus.csv"  # written beside the DuckDB file
SPIKE_DAYS_BEFORE_LAST = 2  # within the default AISPEND_ALERT_LOOKBACK_DAYS, so the spike also alerts
UNALLOCATED = "unallocated"
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
    database = Path(os.environ.get("AISPEND_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH)
    if os.environ.get("AISPEND_SEEDS_DIR"):
        print(f"aispend demo: AISPEND_SEEDS_DIR is ignored; the demo writes its own seeds for {first} .. {last}")
    os.environ.pop("AISPEND_ALERT_WEBHOOK_URL", None)  # the demo's anomalies are synthetic: post nothing
    started = time.monotonic()
    with start_simulators(spike_day=last - timedelta(days=SPIKE_DAYS_BEFORE_LAST)) as sims:
        try:
            seeds = write_demo_seeds(database.parent / DEMO_SEEDS_DIR, first, last, sims.demo_mapping_rows())
        except OSError as exc:
            print(
                f"aispend demo: cannot write the demo's seeds ({exc}); set AISPEND_DUCKDB_PATH to a writable path",
                file=sys.stderr,
            )
            return 2
        os.environ.update({**NO_METADATA_PROBES, **sims.env, "AISPEND_SEEDS_DIR": str(seeds)})
        print(f"aispend demo: simulators of {', '.join(sims.simulators)} on 127.0.0.1")
        ok, reason = materialize(first, last, log_level="WARNING")
        requests = sims.request_counts()
    if not ok:
        print(f"aispend demo: the pipeline failed: {reason}", file=sys.stderr)
        return 1
    focus = export_focus(database, first, last, database.parent / FOCUS_FILE)
    warehouse = DuckDBWarehouse(database, read_only=True)
    print(summary(warehouse, first, last, requests, time.monotonic() - started))
    print(f"  FOCUS file: {focus.path.resolve()}  ({focus.rows} rows; `aispend export focus` writes others)")
    print(f"  seeds: {seeds.resolve()}  (generated for these days; copy them to start your own)")
    return 0


def _usd(amount: Decimal) -> str:
    return f"{round_to_cent(amount):,.2f}"


def summary(warehouse: DuckDBWarehouse, first: date, last: date, requests: dict[str, int], seconds: float) -> str:
    """What the run found: every provider's total (adding up to the printed total to the cent), the share
    without a team, the top teams, every flagged anomaly of the window (alerted or not) and the files."""
    params = {"start": first, "end": last + timedelta(days=1)}
    spend, lines_table = TEAM_DAILY_SPEND.qualified_name, COST_LINE_ITEMS.qualified_name
    where = "WHERE usage_date >= $start AND usage_date < $end"
    monthly = f"SELECT DISTINCT provider FROM {lines_table} WHERE data_lag = 'monthly'"
    providers = warehouse.rows(
        f"SELECT provider, sum(cost_usd), provider IN ({monthly}) FROM {spend} {where} GROUP BY 1 ORDER BY 2 DESC, 1",
        params,
    )
    teams = warehouse.rows(
        f"SELECT team, sum(cost_usd) FROM {spend} {where} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 6", params
    )
    unallocated = warehouse.rows(
        f"SELECT coalesce(sum(cost_usd), 0) FROM {spend} {where} AND team = '{UNALLOCATED}'", params
    )[0][0]
    peak = warehouse.rows(
        f"SELECT usage_date, team, provider, cost_usd FROM {spend} {where} AND provider NOT IN ({monthly}) "
        f"AND team <> '{UNALLOCATED}' ORDER BY cost_usd DESC LIMIT 1",
        params,
    )
    flagged = warehouse.rows(
        f"SELECT usage_date, team, provider, anomaly_type, reason FROM {SPEND_ANOMALIES.qualified_name} "
        f"{where} AND is_anomaly ORDER BY usage_date DESC, team, provider",
        params,
    )
    total = sum((amount for _, amount, _ in providers), Decimal(0))
    shown = cents_adding_up([amount for _, amount, _ in providers])
    share = unallocated / total if total else Decimal(0)
    lines = [
        f"\nAI spend {first} .. {last} ({(last - first).days + 1} days): {_usd(total)} USD",
        "  by provider (the lines add up to the total):",
        *(
            f"    {provider:<16} {shown_amount:>16,.2f}  {'monthly invoice' if is_monthly else 'API, daily'}"
            for (provider, _, is_monthly), shown_amount in zip(providers, shown, strict=True)
        ),
        f"  unallocated (no team matched): {_usd(unallocated)} USD, {share:.1%} of the total",
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
