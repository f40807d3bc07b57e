"""Measure the pipeline end to end against the bundled simulators, as a user runs it.

    .venv/bin/python benchmarks/pipeline_benchmark.py [--days 31] [--repeat 3]

Reports the wall time of `aispend materialize` for a range (a fresh process each time, as CI and
cron run it), of a re-run of the same range, and of `aispend demo`; the API requests per source;
the rows stored; and whether every provider-day total equals the simulator's to the cent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aispend_pipeline.core.days import days_between
from aispend_pipeline.simulators import start_simulators
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

REPO = Path(__file__).resolve().parents[1]
AISPEND = str(Path(sys.executable).with_name("aispend"))


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    last = datetime.now(UTC).date() - timedelta(days=1)
    first = last - timedelta(days=args.days - 1)
    workdir = Path(tempfile.mkdtemp(prefix="aispend-bench-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "DAGSTER_HOME"))}
    base_env["AISPEND_SEEDS_DIR"] = str(REPO / "seeds")
    results: list[tuple[str, str]] = []

    fresh, rerun, requests = [], [], {}
    for attempt in range(args.repeat):
        database = workdir / f"run{attempt}.duckdb"
        with start_simulators() as sims:
            env = {**base_env, **sims.env, "AISPEND_DUCKDB_PATH": str(database)}
            command = [AISPEND, "materialize", "--start", str(first), "--end", str(last)]
            fresh.append(timed(command, env, workdir))
            requests = {"openai": sims.openai.request_count(), "anthropic": sims.anthropic.request_count()}
            rerun.append(timed(command, env, workdir))
            warehouse = DuckDBWarehouse(database)
            stored = dict(
                ((p, d), t)
                for p, d, t in warehouse.rows(
                    "SELECT provider, usage_date, sum(cost_usd) FROM main.cost_line_items "
                    "WHERE provider IN ('openai', 'anthropic') GROUP BY 1, 2"
                )
            )
            truth = {
                (p, d): sims.expected_total_usd(p, d)
                for p in ("openai", "anthropic")
                for d in days_between(first, last + timedelta(days=1))
            }
            reconciled = stored == truth
            rows = warehouse.rows("SELECT count(*) FROM main.cost_line_items")[0][0]

    demo_seconds = timed([AISPEND, "demo"], {**base_env, "AISPEND_DUCKDB_PATH": str(workdir / "demo.duckdb")}, workdir)

    results += [
        (
            f"`aispend materialize` {args.days} days, fresh file (median of {args.repeat})",
            f"{statistics.median(fresh):.2f} s",
        ),
        (
            f"`aispend materialize` {args.days} days, re-run (median of {args.repeat})",
            f"{statistics.median(rerun):.2f} s",
        ),
        ("`aispend demo` (60 days)", f"{demo_seconds:.2f} s"),
        ("API requests for the range", ", ".join(f"{k} {v}" for k, v in requests.items())),
        ("cost_line_items rows", str(rows)),
        ("provider-day totals equal the simulator's", "yes" if reconciled else "NO"),
    ]
    print(f"| measure ({first} .. {last}) | value |\n|---|---|")
    for name, value in results:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
