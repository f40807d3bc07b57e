"""`aispend demo --days 30` as a new user runs it: a fresh process in an empty directory, no settings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from aispend_pipeline.demo import SPIKE_DAYS_BEFORE_LAST
from aispend_pipeline.sources.manual_invoices.vendors import KNOWN_VENDORS
from aispend_pipeline.sources.registry import SOURCES

REPO = Path(__file__).resolve().parents[2]
AISPEND = str(Path(sys.executable).with_name("aispend"))
IGNORED_IN_REPO = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache"}
WINDOW = re.compile(r"^AI spend (\S+) \.\. (\S+) \(30 days\): ([\d,]+\.\d\d) USD$")
PROVIDER = re.compile(r"^    (\S+) +(-?[\d,]+\.\d\d)  (API, daily|monthly invoice)$")
UNALLOCATED = re.compile(r"^  unallocated \(no team matched\): ([\d,]+\.\d\d) USD, ([\d.]+)% of the total$")


@dataclass
class DemoRun:
    directory: Path
    out: str
    seconds: float
    first: date
    last: date
    total: Decimal
    providers: dict[str, tuple[Decimal, str]]

    def line(self, prefix: str) -> str:
        return next(line for line in self.out.splitlines() if line.startswith(prefix))


def _money(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def _repo_files() -> dict[str, int]:
    """Every file of the checkout (outside caches and the virtualenv) with its size."""
    files = {}
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in IGNORED_IN_REPO and not d.endswith(".egg-info")]
        for name in names:
            path = Path(root, name)
            files[str(path.relative_to(REPO))] = path.stat().st_size
    return files


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoRun, dict[str, int], dict[str, bytes]]:
    directory = tmp_path_factory.mktemp("empty")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AISPEND_", "DAGSTER_")) and "_KEY" not in k}
    before = _repo_files()
    seeds_before = {p.name: p.read_bytes() for p in (REPO / "seeds").iterdir()}
    started = time.monotonic()
    done = subprocess.run(
        [AISPEND, "demo", "--days", "30"], cwd=directory, env=env, capture_output=True, text=True, timeout=600
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    window = next(WINDOW.match(line) for line in lines if WINDOW.match(line))
    providers = {m[1]: (_money(m[2]), m[3]) for m in (PROVIDER.match(line) for line in lines) if m is not None}
    run = DemoRun(
        directory,
        done.stdout,
        seconds,
        date.fromisoformat(window[1]),
        date.fromisoformat(window[2]),
        _money(window[3]),
        providers,
    )
    print(f"aispend demo --days 30: {seconds:.1f} s")
    return run, before, seeds_before


def test_every_api_source_shows_with_spend(demo):
    run = demo[0]
    for source in SOURCES:
        if source.has_api:
            amount, how = run.providers[source.name]
            assert amount > 0 and how == "API, daily", source.name


def test_a_monthly_invoice_vendor_shows_whatever_the_day(demo):
    run = demo[0]
    vendors = {v.slug for v in KNOWN_VENDORS}
    invoiced = {p for p, (amount, how) in run.providers.items() if how == "monthly invoice" and amount > 0}
    assert invoiced & vendors, run.out


def test_provider_totals_add_up_to_the_printed_total(demo):
    run = demo[0]
    assert sum(amount for amount, _ in run.providers.values()) == run.total


def test_unallocated_share_is_printed_and_small(demo):
    run = demo[0]
    match = UNALLOCATED.match(run.line("  unallocated"))
    assert match is not None
    amount, percent = _money(match[1]), Decimal(match[2])
    assert percent < 20
    assert abs(amount / run.total * 100 - percent) <= Decimal("0.05")


def test_the_spike_is_among_the_flagged_anomalies(demo):
    run = demo[0]
    spike = run.last - timedelta(days=SPIKE_DAYS_BEFORE_LAST)
    flagged = [line for line in run.out.splitlines() if line.startswith(f"    {spike} ")]
    assert any("(spike)" in line for line in flagged), run.out


def test_files_land_in_the_working_directory_and_nowhere_else(demo):
    run, repo_before, seeds_before = demo
    data = run.directory / "data"
    for name in ("aispend.duckdb", "aispend-report.html", "aispend-focus.csv", "demo-seeds/org_mapping.csv"):
        assert (data / name).is_file(), name
    assert (run.directory / ".dagster" / "dagster.yaml").is_file()
    # The run is in that persistent instance (what `dagster dev` with it shows), its partitions materialised.
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(run.directory / ".dagster"))) as instance:
        assert instance.get_runs_count() == 1
        assert str(run.last) in instance.get_materialized_partitions(dg.AssetKey(["team_daily_spend"]))
    assert f"  DuckDB file: {(data / 'aispend.duckdb').resolve()}" in run.out
    assert f"  FOCUS file: {(data / 'aispend-focus.csv').resolve()}" in run.out
    assert not (run.directory / "seeds").exists()
    assert {p.name: p.read_bytes() for p in (REPO / "seeds").iterdir()} == seeds_before
    assert _repo_files() == repo_before
