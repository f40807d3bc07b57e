"""Validate `aispend export focus` with the FinOps Foundation's validator (`focus-validator` 1.0.0).

    python benchmarks/focus_validate.py [--days 60] [--venv .focus-validator] [--data-file F.csv]

The validator pins an old pandera and `numpy<2`, so it lives in its own virtual environment (created on
first use; `multimethod<2` because 2.x breaks its import). It runs with its `site-packages` as the working
directory: its currency rule opens its bundled code list through a relative path. Without `--data-file`
the script builds a demo-like dataset first (the bundled simulators, the example seeds plus a usage
invoice from a vendor without a display name, a tax line and a credit), exports it as CSV and validates
that. It prints every rule passed or failed and exits 0 when the only failures are the five rules that
name pre-1.0 columns (see docs/focus.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VALIDATOR = "focus-validator==1.0.0"
LOCATE_SITE_PACKAGES = "import focus_validator, pathlib; print(pathlib.Path(focus_validator.__file__).parents[1])"
# These five look for pre-1.0 column names (ResourceID, ChargeType, Provider, Publisher, InvoiceIssuer):
# every FOCUS 1.0 file fails them. The project's own tests check the 1.0 columns they miss.
PRE_1_0_RULES = frozenset(
    {"ResourceID_Required", "SkuPriceId_Nullable", "Provider_Required", "Publisher_Required", "InvoiceIssuer_Required"}
)


def extra_invoices(month: str) -> str:
    """Invoice lines that put every charge shape into the file: Usage from an unnamed vendor, Tax, Credit."""
    return (
        f"Acme Voice AI,Voice agent minutes,{month},1234.50,USD,support,CC-220,Usage,usage invoice\n"
        f"Cursor,Sales tax,{month},198.40,USD,platform,CC-100,Tax,tax on the seat invoice\n"
        f"Cursor,Service credit,{month},-50.00,USD,platform,CC-100,Credit,outage credit\n"
    )


def ensure_validator(venv: Path) -> Path:
    """The validator's site-packages, installing it into its own venv the first time."""
    python = venv / "bin" / "python"
    if not (venv / "bin" / "focus-validator").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", VALIDATOR, "multimethod<2"], check=True)
    found = subprocess.run(
        [str(python), "-c", LOCATE_SITE_PACKAGES],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(found.stdout.strip())


def build_dataset(workdir: Path, days: int) -> Path:
    """Run the pipeline over the simulators for `days` days ending yesterday and export the FOCUS CSV."""
    from aispend_pipeline.cli import materialize
    from aispend_pipeline.demo import NO_METADATA_PROBES
    from aispend_pipeline.export.focus import export_focus
    from aispend_pipeline.simulators import start_simulators

    last = datetime.now(UTC).date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    seeds = workdir / "seeds"
    shutil.copytree(REPO / "seeds", seeds)
    with (seeds / "manual_invoices.csv").open("a") as invoices:
        invoices.write(extra_invoices(f"{first:%Y-%m}"))
    database = workdir / "aispend.duckdb"
    os.environ.update({"AISPEND_DUCKDB_PATH": str(database), "AISPEND_SEEDS_DIR": str(seeds)})
    with start_simulators(spike_day=last - timedelta(days=4)) as sims:
        os.environ.update({**NO_METADATA_PROBES, **sims.env})
        ok, reason = materialize(first, last, log_level="WARNING")
    if not ok:
        raise SystemExit(f"the pipeline failed: {reason}")
    done = export_focus(database, first, last, workdir / "focus.csv")
    print(f"exported {done.rows} rows for {first}..{last}, BilledCost total {done.billed_cost:.2f} USD")
    return done.path


def run_validator(site_packages: Path, data_file: Path, report: Path) -> dict[str, str | None]:
    """Every rule the validator reports: name -> None when passed, else its failure message."""
    subprocess.run(
        [
            str(site_packages.parents[2] / "bin" / "focus-validator"),
            "--data-file",
            str(data_file.resolve()),
            "--validate-version",
            "1.0",
            "--output-type",
            "unittest",
            "--output-destination",
            str(report.resolve()),
        ],
        cwd=site_packages,  # its currency rule reads focus_validator/utils/currency_codes.csv from here
        check=False,
        capture_output=True,
    )
    results: dict[str, str | None] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        failure = case.find("failure")
        rule = case.get("name", "").split(" :: ")[0]
        results[rule] = None if failure is None else failure.get("message", "failed")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60, help="days of demo data ending yesterday (default 60)")
    parser.add_argument("--venv", type=Path, default=REPO / ".focus-validator", help="the validator's own venv")
    parser.add_argument("--data-file", type=Path, help="validate this CSV instead of a fresh demo export")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=r".*(is currently in beta|is currently in preview)")
    site_packages = ensure_validator(args.venv)
    with tempfile.TemporaryDirectory(prefix="focus-validate-") as tmp:
        workdir = Path(tmp)
        data_file = args.data_file or build_dataset(workdir, args.days)
        results = run_validator(site_packages, data_file, workdir / "focus-validator.xml")
    failed = {rule: message for rule, message in results.items() if message is not None}
    for rule, message in sorted(results.items()):
        status = "PASS" if message is None else ("FAIL (pre-1.0 name)" if rule in PRE_1_0_RULES else "FAIL")
        print(f"{status:<20} {rule}" + (f": {message}" if message and rule not in PRE_1_0_RULES else ""))
    unexpected = sorted(set(failed) - PRE_1_0_RULES)
    print(
        f"{VALIDATOR} on {date.today()}: {len(results)} rules, {len(results) - len(failed)} passed, "
        f"{len(failed)} failed ({len(set(failed) & PRE_1_0_RULES)} of them the five pre-1.0 rules)"
        + (f"; UNEXPECTED: {', '.join(unexpected)}" if unexpected else "")
    )
    return 1 if unexpected or not results else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
