"""Settings: read from the environment (and `.env`), validated before a run writes anything.

Resources read their values as Dagster `EnvVar`s, resolved at run time and never stored in run storage.
`validate_settings` checks every general setting at the start of a run (the command line checks it before
Dagster starts, the run itself checks again for scheduled runs) and names each problem with what to do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg

from aispend_pipeline.anomalies.detector import DetectorParams
from aispend_pipeline.errors import AispendError

DEFAULT_DUCKDB_PATH = "data/aispend.duckdb"
DEFAULT_DUCKDB_MEMORY_LIMIT = "1GB"
MEMORY_LIMIT_PATTERN = re.compile(r"\s*[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*", re.IGNORECASE)
DEFAULT_SEEDS_DIR = "seeds"
DEFAULT_RESTATEMENT_DAYS = 3
DEFAULT_ALERT_LOOKBACK_DAYS = 3
DEFAULT_UNALLOCATED_WARN_SHARE = Decimal("0.05")
TRUE_VALUES = ("1", "true", "yes", "on")
FALSE_VALUES = ("", "0", "false", "no", "off")


class SettingsError(AispendError):
    """A setting has a value the pipeline cannot use; nothing was written."""


def env_or(name: str, default: str | None = None) -> dg.EnvVar | str | None:
    """`EnvVar(name)` when the variable is set, else the default (None: the source stays disabled)."""
    return dg.EnvVar(name) if dg.EnvVar(name).get_value() else default


def load_dotenv_file(directory: Path | None = None) -> None:
    """Read `.env` from the working directory as `dagster dev` does; the environment wins over the file."""
    from dotenv import load_dotenv

    path = (directory or Path.cwd()) / ".env"
    if path.is_file():
        load_dotenv(path, override=False)


def _int(env: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name}={raw!r} is not a whole number of days (e.g. {name}={default})")
        return default
    if value < 0:
        problems.append(f"{name}={raw!r} is negative; use 0 or more days")
    return value


def _days_setting(name: str, default: int, env: Mapping[str, str] | None) -> int:
    problems: list[str] = []
    value = _int(os.environ if env is None else env, name, default, problems)
    if problems:
        raise SettingsError(problems[0])
    return value


def restatement_days(env: Mapping[str, str] | None = None) -> int:
    """AISPEND_RESTATEMENT_DAYS: past days each scheduled run re-pulls (validated)."""
    return _days_setting("AISPEND_RESTATEMENT_DAYS", DEFAULT_RESTATEMENT_DAYS, env)


def alert_lookback_days(env: Mapping[str, str] | None = None) -> int:
    """AISPEND_ALERT_LOOKBACK_DAYS: how far back from a run's newest day alerts are sent (validated)."""
    return _days_setting("AISPEND_ALERT_LOOKBACK_DAYS", DEFAULT_ALERT_LOOKBACK_DAYS, env)


def unallocated_warn_share(env: Mapping[str, str] | None = None) -> Decimal:
    raw = (os.environ if env is None else env).get("AISPEND_UNALLOCATED_WARN_SHARE", "").strip()
    if not raw:
        return DEFAULT_UNALLOCATED_WARN_SHARE
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal(-1)
    if not Decimal(0) <= value <= Decimal(1):
        raise SettingsError(f"AISPEND_UNALLOCATED_WARN_SHARE={raw!r} must be a fraction between 0 and 1, e.g. 0.05")
    return value


# Detector parameters a user may override: setting -> (DetectorParams field, smallest allowed, example).
ANOMALY_SETTINGS: dict[str, tuple[str, float, str]] = {
    "AISPEND_ANOMALY_SCORE_THRESHOLD": ("score_threshold", 0.5, "3.5"),
    "AISPEND_ANOMALY_MIN_IMPACT_USD": ("min_impact_usd", 0.0, "10"),
    "AISPEND_ANOMALY_MIN_IMPACT_PCT": ("min_impact_pct", 0.0, "0.2"),
}


def _detector_params(env: Mapping[str, str], problems: list[str]) -> DetectorParams:
    overrides: dict[str, float] = {}
    for name, (attribute, smallest, example) in ANOMALY_SETTINGS.items():
        raw = env.get(name, "").strip()
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not value >= smallest:
            problems.append(f"{name}={raw!r} must be a number of at least {smallest:g}, e.g. {name}={example}")
            continue
        overrides[attribute] = value
    if "min_impact_usd" in overrides:  # new spend is material at the same dollar floor
        overrides["new_spend_min_usd"] = overrides["min_impact_usd"]
    return DetectorParams(**overrides)  # type: ignore[arg-type]


def detector_params(env: Mapping[str, str] | None = None) -> DetectorParams:
    """The anomaly detector's parameters: the defaults, with AISPEND_ANOMALY_* overrides (validated)."""
    problems: list[str] = []
    params = _detector_params(os.environ if env is None else env, problems)
    if problems:
        raise SettingsError(problems[0])
    return params


def alert_webhook_url(env: Mapping[str, str] | None = None) -> str | None:
    """AISPEND_ALERT_WEBHOOK_URL, read at run time (a secret: never logged or stored)."""
    return (os.environ if env is None else env).get("AISPEND_ALERT_WEBHOOK_URL", "").strip() or None


def settings_problems(env: Mapping[str, str] | None = None) -> list[str]:
    """Every general setting that has an unusable value, each with what to do (empty: all good)."""
    env = os.environ if env is None else env
    problems: list[str] = []
    _int(env, "AISPEND_RESTATEMENT_DAYS", DEFAULT_RESTATEMENT_DAYS, problems)
    _int(env, "AISPEND_ALERT_LOOKBACK_DAYS", DEFAULT_ALERT_LOOKBACK_DAYS, problems)
    try:
        unallocated_warn_share(env)
    except SettingsError as exc:
        problems.append(str(exc))
    _detector_params(env, problems)
    seeds = Path(env.get("AISPEND_SEEDS_DIR") or DEFAULT_SEEDS_DIR)
    if not seeds.is_dir():
        named = "AISPEND_SEEDS_DIR" if env.get("AISPEND_SEEDS_DIR") else f"the default seeds directory ({seeds})"
        problems.append(
            f"{named} {seeds.resolve()} does not exist; set AISPEND_SEEDS_DIR to your seeds directory "
            "(an empty directory means no mapping rules and no invoices)"
        )
    database = Path(env.get("AISPEND_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH)
    problem = _unwritable(database)
    if problem:
        problems.append(f"AISPEND_DUCKDB_PATH {database.resolve()}: {problem}")
    limit = env.get("AISPEND_DUCKDB_MEMORY_LIMIT", "")
    if limit and not MEMORY_LIMIT_PATTERN.fullmatch(limit):
        problems.append(f"AISPEND_DUCKDB_MEMORY_LIMIT={limit!r} must be a size such as 1GB or 512MB")
    report = env.get("AISPEND_REPORT_PATH", "").strip()
    problem = _unwritable(Path(report), "data/aispend-report.html") if report else None
    if problem:
        problems.append(f"AISPEND_REPORT_PATH {Path(report).resolve()}: {problem}")
    for name in ("AISPEND_AWS_ENABLED", "AISPEND_M365_ENABLED"):
        raw = env.get(name, "").strip().lower()
        if raw not in TRUE_VALUES + FALSE_VALUES:
            problems.append(f"{name}={env.get(name)!r} must be true or false")
    price = env.get("AISPEND_COPILOT_SEAT_PRICE_USD", "").strip()
    if price:
        try:
            valid = Decimal(price) > 0
        except InvalidOperation:
            valid = False
        if not valid:
            problems.append(f"AISPEND_COPILOT_SEAT_PRICE_USD={price!r} must be a positive amount in USD, e.g. 19")
    webhook = env.get("AISPEND_ALERT_WEBHOOK_URL", "").strip()
    if webhook and urlsplit(webhook).scheme not in ("http", "https"):
        problems.append("AISPEND_ALERT_WEBHOOK_URL must be an http(s) URL (a Slack-compatible incoming webhook)")
    return problems


def validate_settings(env: Mapping[str, str] | None = None) -> None:
    """Raise one `SettingsError` naming every unusable setting."""
    problems = settings_problems(env)
    if problems:
        raise SettingsError("; ".join(problems))


def is_enabled(value: str | None) -> bool:
    return (value or "").strip().lower() in TRUE_VALUES


def _unwritable(database: Path, example: str = "data/aispend.duckdb") -> str | None:
    """Why the file (the DuckDB file, the report) cannot be written, or None."""
    if database.is_dir():
        return f"is a directory; name a file, e.g. {example}"
    parent = database.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, not a directory; choose a path in a writable directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create files in {parent}; choose a writable directory"
    if database.exists() and not os.access(database, os.W_OK):
        return "the file is read-only; choose a writable path"
    return None


REPORT_FILE_NAME = "aispend-report.html"


def report_path(duckdb_path: str | Path, env: Mapping[str, str] | None = None) -> Path:
    """AISPEND_REPORT_PATH, else `aispend-report.html` beside the DuckDB file (relative to the cwd)."""
    named = (os.environ if env is None else env).get("AISPEND_REPORT_PATH", "").strip()
    return Path(named) if named else Path(duckdb_path).parent / REPORT_FILE_NAME
