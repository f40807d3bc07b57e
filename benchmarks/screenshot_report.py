"""Render the HTML report in a real headless Chromium and save a PNG (a browser check, not a test).

    python benchmarks/screenshot_report.py [REPORT.html] [--output docs/report.png]

Without a report path it takes the one the last run wrote (AISPEND_REPORT_PATH, else beside the DuckDB
file). Needs Debian's `chromium` (apt-get install -y chromium); the test suite never does. Chromium runs
with a fresh profile and no background networking, so it reaches nothing but the file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from aispend_pipeline.settings import DEFAULT_DUCKDB_PATH, report_path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=10000",  # let plotly draw every figure before the capture
)


def screenshot(report: Path, output: Path, width: int = 1400, height: int = 2400) -> Path:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is not installed: apt-get install -y chromium")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aispend-chromium-") as profile:
        completed = subprocess.run(
            [
                browser,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={output.resolve()}",
                f"--window-size={width},{height}",
                report.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if completed.returncode != 0 or not output.is_file():
        raise SystemExit(f"chromium failed ({completed.returncode}): {completed.stderr[-2000:]}")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = report_path(os.environ.get("AISPEND_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH)
    parser.add_argument("report", nargs="?", type=Path, default=default)
    parser.add_argument("--output", type=Path, default=Path("docs/report.png"))
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"no report at {args.report}: run `aispend demo` first", file=sys.stderr)
        return 2
    print(screenshot(args.report, args.output, args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
