"""Raw pulls: every source fetched for the run's range, concurrently, each failure kept to its source.

Each source's pull has a thread of the run; a long range's streaming pull (a backfill) decodes in a
worker process (`sources/worker.py`), so that the sources' Python work runs on every core.

A source's client fetches the whole range in as few requests as the provider's page size allows; its
rows are staged in the run's copy as they arrive (`warehouse/staging.py`: page by page for the sources
whose answers can be large, one checked frame for the others) and checked there in SQL. A failing
source is reported (source, days, what to check) while the others go on; it stores nothing, so its
stored days stay exactly as they were. Only the days the answer covers are replaced.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg

from aispend_pipeline.core.days import days_between
from aispend_pipeline.defs.metadata import days_summary, days_text, table_metadata, usd
from aispend_pipeline.defs.outcome import CheckOutcome, StepOutcome
from aispend_pipeline.errors import failure_message
from aispend_pipeline.schemas.table import DECIMAL
from aispend_pipeline.schemas.validation import validate
from aispend_pipeline.sources.base import RawPull, Source, SourceResource
from aispend_pipeline.sources.worker import pull_in_worker
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse
from aispend_pipeline.warehouse.staging import Staging, staged_name

TOTAL_CHECK = "stored_total_matches_source"
FRESHNESS_CHECK = "data_is_fresh"
FRESHNESS_LIMITS = {"daily": timedelta(hours=36), "monthly": timedelta(days=40)}
MAX_PARALLEL_PULLS = 8
# A streaming source's pull of this many days or more runs in a worker process (`sources/worker.py`), so
# that the pulls decode in parallel; a shorter one (a daily run) is cheaper in the run's thread.
WORKER_MIN_DAYS = 32


def raw_asset_key(source: Source) -> dg.AssetKey:
    return dg.AssetKey([source.raw_table.schema, source.raw_table.name])


@dataclass
class SourcePull:
    """What one source's pull gave: a staged, checked raw pull, "not configured", or the error that stopped it."""

    source: Source
    status: str  # loaded, not configured, failed
    pull: RawPull | None = None
    error: str | None = None
    seconds: float = 0.0  # the client's pull, staging and the raw tables' checks
    fetch_seconds: float = 0.0  # the client's pull and staging, alone
    reason: str = ""
    metadata: dict[str, dg.MetadataValue] = field(default_factory=dict)
    staging: Staging | None = None  # the staged rows (loaded pulls), copied by `store_pull`
    staged_rows: dict[str, int] = field(default_factory=dict)  # qualified table name -> rows
    changed_outside: list[date] = field(default_factory=list)  # replaced days outside the run's range that changed


def pull_sources(
    warehouse: DuckDBWarehouse,
    sources: Sequence[tuple[Source, SourceResource]],
    start: date,
    end: date,
    log: Callable[[str], None],
) -> list[SourcePull]:
    """Pull every source for [start, end) at once (the providers answer in parallel), each staged in `warehouse`."""
    if not sources:
        return []
    with warehouse.connect() as con:
        stagings = [Staging(con, s.name, [s.raw_table, *s.companion_tables]) for s, _ in sources]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_PULLS, len(sources))) as pool:
        pulls = list(
            pool.map(lambda item: _pull_one(*item[0], start, end, item[1]), zip(sources, stagings, strict=True))
        )
    for pulled in pulls:
        log(f"{pulled.source.name}: {pulled.status}{': ' + pulled.error if pulled.error else ''}")
    return pulls


def _pull_one(source: Source, resource: SourceResource, start: date, end: date, staging: Staging) -> SourcePull:
    began = time.monotonic()
    if not resource.is_configured:
        staging.drop()
        return SourcePull(source, "not configured", reason=resource.not_configured_reason)
    try:
        if resource.streams and (end - start).days >= WORKER_MIN_DAYS:
            pull = pull_in_worker(resource, source.name, start, end, staging)
        elif resource.streams:
            pull = resource.pull_into(start, end, staging)
        else:
            pull = resource.pull(start, end)
            _stage_frames(source, pull, staging)
        fetched = time.monotonic() - began
        rows = staging.finish()
    except Exception as exc:  # a failing source (clear error or not) stays with its source and stores nothing
        staging.drop()
        return SourcePull(source, "failed", error=failure_message(source.name, exc), seconds=time.monotonic() - began)
    pull = RawPull(None, pull.api_requests, pull.days, pull.rounding_usd)
    return SourcePull(
        source,
        "loaded",
        pull=pull,
        seconds=time.monotonic() - began,
        fetch_seconds=fetched,
        staging=staging,
        staged_rows=rows,
    )


def _stage_frames(source: Source, pull: RawPull, staging: Staging) -> None:
    """A frame-returning source's rows (its raw frame and companions, `line_ordinal` included), validated
    with pandera while they are in pandas anyway (such answers are small), then staged."""
    if pull.frame is not None:
        staging.append(source.raw_table, validate(source.raw_table, pull.frame, source.name), None)
    for table in source.companion_tables:
        if table.qualified_name in pull.companions:
            staging.append(table, validate(table, pull.companions[table.qualified_name], source.name), None)


def covered_days(pulled: SourcePull, start: date, end: date) -> list[date]:
    """The days a loaded pull replaces: what the answer covers (every requested day by default)."""
    assert pulled.pull is not None
    return sorted(pulled.pull.days) if pulled.pull.days is not None else list(days_between(start, end))


def changed_days(warehouse: DuckDBWarehouse, pulled: SourcePull, days: Sequence[date]) -> list[date]:
    """The `days` whose staged rows (of any of the source's tables) differ from the stored ones, as multisets.

    A source may answer for more days than the run asked (a live seat list restates the last days, an
    invoice month is replaced whole): those whose rows did not change need no new line items."""
    if not days:
        return []
    tables = [
        t for t in (pulled.source.raw_table, *pulled.source.companion_tables) if t.qualified_name in pulled.staged_rows
    ]
    changed: set[date] = set()
    for table in tables:
        names = ", ".join(table.column_names)
        within = f"{table.date_column} IN (SELECT unnest($days))"
        staged = f"SELECT {table.casts_sql} FROM {staged_name(table)} WHERE {within}"
        stored = f"SELECT {names} FROM {table.qualified_name} WHERE {within}"
        changed |= {
            row[0]
            for row in warehouse.rows(
                f"SELECT DISTINCT {table.date_column} FROM (({staged}) EXCEPT ALL ({stored})) "
                f"UNION SELECT DISTINCT {table.date_column} FROM (({stored}) EXCEPT ALL ({staged}))",
                {"days": list(days)},
            )
        }
    return sorted(changed)


def store_pull(warehouse: DuckDBWarehouse, pulled: SourcePull, start: date, end: date) -> StepOutcome:
    """Write a source's pull into the run's copy and say what was stored (checks included)."""
    source, key = pulled.source, raw_asset_key(pulled.source)
    warehouse.ensure_tables([source.raw_table, *source.companion_tables])
    if pulled.status == "not configured":
        return StepOutcome(
            key,
            {"status": pulled.reason, "dagster/row_count": 0, **last_data(warehouse, source)},
            [
                CheckOutcome(TOTAL_CHECK, True, {"status": "not configured"}),
                CheckOutcome(FRESHNESS_CHECK, True, {"status": "not configured"}),
            ],
        )
    assert pulled.pull is not None and pulled.staging is not None
    days, money = covered_days(pulled, start, end), source.money_column
    staged = staged_name(source.raw_table)
    source_rows = pulled.staged_rows[source.raw_table.qualified_name]
    source_total = warehouse.rows(f"SELECT coalesce(sum(CAST({money} AS {DECIMAL})), 0) FROM {staged}")[0][0]
    pulled.changed_outside = changed_days(warehouse, pulled, [d for d in days if not start <= d < end])
    warehouse.replace_days_from(source.raw_table, staged, days)
    stored_rows, stored_total = days_summary(warehouse, source.raw_table, days, money)
    companion_rows = {
        f"{table.name}_rows": warehouse.replace_days_from(table, staged_name(table), days)
        for table in source.companion_tables
        if table.qualified_name in pulled.staged_rows
    }
    pulled.staging.drop()
    rounding = sum(pulled.pull.rounding_usd.values(), Decimal(0))
    metadata = {
        "status": "loaded",
        "dagster/row_count": stored_rows,
        "total_usd": usd(stored_total),
        "api_requests": pulled.pull.api_requests,
        **companion_rows,
        "pull_seconds": round(pulled.seconds, 3),
        "days_replaced": days_text(days),
        "rounding_usd": usd(rounding),
        **last_data(warehouse, source),
        **(table_metadata(warehouse, source.raw_table, days[0], days[-1] + timedelta(days=1), money) if days else {}),
    }
    if rounding:
        metadata["rounding_by_day"] = dg.MetadataValue.md(
            "| day | rounded away (USD) |\n|---|---:|\n"
            + "\n".join(f"| {d} | {v} |" for d, v in sorted(pulled.pull.rounding_usd.items()) if v)
        )
    return StepOutcome(
        key,
        metadata,
        [
            CheckOutcome(
                TOTAL_CHECK,
                stored_total == source_total and stored_rows == source_rows,
                {
                    "source_total_usd": usd(source_total),
                    "stored_total_usd": usd(stored_total),
                    "source_rows": source_rows,
                    "stored_rows": stored_rows,
                },
                blocking=True,
            ),
            freshness(warehouse, source),
        ],
    )


def last_data(warehouse: DuckDBWarehouse, source: Source) -> dict[str, dg.MetadataValue]:
    day = last_data_date(warehouse, source)
    return {"last_data_date": dg.MetadataValue.text(str(day) if day else "none")}


def last_data_date(warehouse: DuckDBWarehouse, source: Source) -> date | None:
    table = source.raw_table
    return warehouse.rows(f"SELECT max({table.date_column}) FROM {table.qualified_name}")[0][0]


def freshness(warehouse: DuckDBWarehouse, source: Source, now: datetime | None = None) -> CheckOutcome:
    """Daily sources should have data ending within ~36 hours, monthly (invoice) ones within ~40 days."""
    now = now or datetime.now(UTC)
    limit = FRESHNESS_LIMITS[source.data_lag]
    last = last_data_date(warehouse, source)
    if last is None:
        return CheckOutcome(FRESHNESS_CHECK, False, {"last_data_date": "none", "limit": str(limit)}, warn=True)
    data_end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    age = now - data_end
    return CheckOutcome(
        FRESHNESS_CHECK,
        age <= limit,
        {"last_data_date": str(last), "age_hours": round(age.total_seconds() / 3600, 1), "limit": str(limit)},
        warn=True,
    )
