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
from aispend_pipeline.simulators.demo_seeds import DEMO_SEEDS_DIR, write_demo_seeds
from aispend_pipeline.sources.registry import SOURCES
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

AISPEND = str(Path(sys.executable).with_name("aispend"))
# Every setting a source is enabled by: cleared, so only the simulators' settings count.
SOURCE_SETTINGS = {name for source in SOURCES for name in source.enabled_by}


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
    base_env = {k: v for k, v in os.environ.items() if k not in SOURCE_SETTINGS and not k.startswith("AISPEND_")}
    base_env.pop("DAGSTER_HOME", None)
    results: list[tuple[str, str]] = []

    fresh, rerun, requests = [], [], {}
    for attempt in range(args.repeat):
        database = workdir / f"run{attempt}.duckdb"
        with start_simulators() as sims:
            seeds = write_demo_seeds(workdir / DEMO_SEEDS_DIR, first, last, sims.demo_mapping_rows())
            env = {**base_env, **sims.env, "AISPEND_DUCKDB_PATH": str(database), "AISPEND_SEEDS_DIR": str(seeds)}
            command = [AISPEND, "materialize", "--start", str(first), "--end", str(last)]
            fresh.append(timed(command, env, workdir))
            requests = sims.request_counts()
            rerun.append(timed(command, env, workdir))
            warehouse = DuckDBWarehouse(database)
            simulated = tuple(sims.simulators)
            stored = dict(
                ((p, d), t)
                for p, d, t in warehouse.rows(
                    "SELECT provider, usage_date, sum(cost_usd) FROM main.cost_line_items "
                    "WHERE list_contains($providers, provider) GROUP BY 1, 2",
                    {"providers": list(simulated)},
                )
            )
            truth = {
                (p, d): sims.expected_total_usd(p, d)
                for p in simulated
                for d in days_between(first, last + timedelta(days=1))
            }
            reconciled = set(stored) <= set(truth) and all(stored.get(k, 0) == v for k, v in truth.items())
            rows = warehouse.rows("SELECT count(*) FROM main.cost_line_items")[0][0]

    demo_dir = workdir / "demo"  # an empty directory, as a new user runs it
    demo_dir.mkdir()
    demo_seconds = timed([AISPEND, "demo"], base_env, demo_dir)

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
