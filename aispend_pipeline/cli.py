"""`aispend`: materialise the pipeline for a range of days, or run the demo against local simulators."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from aispend_pipeline.defs.partitions import PARTITIONS_START
from aispend_pipeline.errors import AispendError

if TYPE_CHECKING:
    import dagster as dg

JOB_NAME = "aispend_daily"


def _error_names(cls: type[Exception]) -> set[str]:
    """Class names of the pipeline's own errors, whose messages are written for users."""
    return {cls.__name__}.union(*(_error_names(sub) for sub in cls.__subclasses__()))


def today_utc() -> date:
    return datetime.now(UTC).date()


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a day (YYYY-MM-DD)") from None


def check_range(first: date, last: date) -> str | None:
    """Why a requested range cannot run, or None."""
    yesterday = today_utc() - timedelta(days=1)
    if first > last:
        return f"--start {first} is after --end {last}"
    if first < date.fromisoformat(PARTITIONS_START):
        return f"--start {first} is before the first daily partition ({PARTITIONS_START})"
    if last > yesterday:
        return f"--end {last} is not a completed UTC day yet (the latest is {yesterday})"
    return None


def materialize(
    first: date, last: date, log_level: str = "CRITICAL", instance: dg.DagsterInstance | None = None
) -> tuple[bool, str]:
    """Run every asset for the days first..last (inclusive) as one Dagster run: (success, reason).

    The run is recorded in the persistent instance (`DAGSTER_HOME`, default ./.dagster), so it shows in
    the UI's run history and partition status. Dagster's own log lines are shown from `log_level` up.
    """
    import dagster as dg

    from aispend_pipeline.definitions import build_definitions
    from aispend_pipeline.defs.schedules import range_tags
    from aispend_pipeline.instance import ensure_dagster_home

    if instance is None:
        ensure_dagster_home()
    with instance or dg.DagsterInstance.get() as instance:
        result = (
            build_definitions()
            .resolve_job_def(JOB_NAME)
            .execute_in_process(
                instance=instance,
                tags=range_tags(first, last),
                run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
                raise_on_error=False,
            )
        )
    return result.success, "" if result.success else failure_reason(result)


def failure_reason(result: dg.ExecuteInProcessResult) -> str:
    """One line: the pipeline's own error (source, day, what to do) if it raised one, else Dagster's."""
    ours = _error_names(AispendError)  # now: subclasses defined by modules imported since
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        error = event.step_failure_data.error
        first_message = error.message if error else "unknown error"
        while error is not None:
            if error.cls_name in ours:
                message = error.message.strip().splitlines()[0]
                return message.split(f"{error.cls_name}: ", 1)[-1]
            error = error.cause
        return f"step {event.step_key} failed: {first_message.strip().splitlines()[0]}"
    return "the run failed before any step ran; see the Dagster logs above"


def cmd_materialize(args: argparse.Namespace) -> int:
    from aispend_pipeline.defs.partitions import scheduled_window
    from aispend_pipeline.settings import SettingsError, restatement_days, validate_settings

    try:
        validate_settings()
    except SettingsError as exc:
        print(f"aispend: nothing was run: {exc}", file=sys.stderr)
        return 2
    if args.start is None and args.end is None:
        first, last = scheduled_window(today_utc(), restatement_days())
    else:
        first, last = args.start or args.end, args.end or args.start
    problem = check_range(first, last)
    if problem:
        print(f"aispend: {problem}", file=sys.stderr)
        return 2
    ok, reason = materialize(first, last, log_level="INFO" if args.verbose else "CRITICAL")
    if not ok:
        print(f"aispend: materialize {first}..{last} failed: {reason}", file=sys.stderr)
        return 1
    print(f"aispend: materialized {first}..{last} ({(last - first).days + 1} days)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from aispend_pipeline.demo import run_demo

    return run_demo(args.days)


def cmd_export_focus(args: argparse.Namespace) -> int:
    """Write the FOCUS file; one line either way (rows and BilledCost total, or why not)."""
    from pathlib import Path

    from aispend_pipeline.export.focus import ExportError, export_focus
    from aispend_pipeline.settings import DEFAULT_DUCKDB_PATH

    days = []
    for flag, value in (("--start", args.start), ("--end", args.end)):
        try:
            days.append(date.fromisoformat(value))
        except ValueError:
            print(f"aispend: {flag} {value!r} is not a day (YYYY-MM-DD); nothing was written", file=sys.stderr)
            return 2
    database = Path(os.environ.get("AISPEND_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH)
    try:
        done = export_focus(database, days[0], days[1], Path(args.output))
    except ExportError as exc:
        print(f"aispend: export focus failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"aispend: wrote {done.rows} FOCUS rows for {days[0]}..{days[1]} to {done.path} ({done.file_format}), "
        f"BilledCost total {done.billed_cost:.2f} USD"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aispend", description="AI spend from every bill, attributed to teams.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("materialize", help="materialise every asset for a range of days as one run")
    run.add_argument("--start", type=_day, help="first day, YYYY-MM-DD (default: the scheduled window)")
    run.add_argument("--end", type=_day, help="last day, inclusive")
    run.add_argument("--verbose", action="store_true", help="show Dagster's log and tracebacks")
    run.set_defaults(handler=cmd_materialize)
    demo = commands.add_parser("demo", help="run the whole pipeline against bundled local simulators")
    demo.add_argument("--days", type=int, default=60, help="days ending yesterday (default 60)")
    demo.set_defaults(handler=cmd_demo)
    export = commands.add_parser("export", help="write a dataset for other tools").add_subparsers(
        dest="dataset", required=True
    )
    focus = export.add_parser("focus", help="the FOCUS dataset of a range of days (CSV, or Parquet for .parquet)")
    focus.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    focus.add_argument("--end", required=True, help="last day, inclusive")
    focus.add_argument("--output", required=True, help="file to write; Parquet when it ends in .parquet")
    focus.set_defaults(handler=cmd_export_focus)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    from aispend_pipeline.settings import load_dotenv_file

    warnings.filterwarnings("ignore", message=r".*(is currently in beta|is currently in preview)")
    args = build_parser().parse_args(argv)
    load_dotenv_file()
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
