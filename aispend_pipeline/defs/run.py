"""The run as one step: pull every source, normalise, attribute, roll up, check, then publish once.

Every asset of the pipeline is a spec of this one multi-asset, so that a run (one day, the scheduled
window or a year's backfill) is published as a whole: the tables are built in a working copy of the
DuckDB file (`warehouse/publish.py`), the blocking checks run on that copy, and only if they pass is
the copy swapped in. A failing source stores nothing and fails the run after the other sources were
published; its stored days stay as they were. Selecting a subset of the assets runs only their parts.
"""

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
from dagster import AssetExecutionContext

from aispend_pipeline.defs import allocate, anomalies, marts, normalise, report, unit_costs
from aispend_pipeline.defs.asset_defaults import OWNERS
from aispend_pipeline.defs.ingest import (
    FRESHNESS_CHECK,
    TOTAL_CHECK,
    SourcePull,
    pull_sources,
    raw_asset_key,
    store_pull,
)
from aispend_pipeline.defs.outcome import StepOutcome
from aispend_pipeline.defs.partitions import daily_partitions, partition_dates, single_run_backfill
from aispend_pipeline.defs.resources import SeedsResource, WarehouseResource
from aispend_pipeline.errors import AispendError
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS, LINE_ITEMS, TEAM_DAILY_SPEND
from aispend_pipeline.settings import validate_settings
from aispend_pipeline.sources.base import Source, SourceResource
from aispend_pipeline.sources.registry import SOURCES
from aispend_pipeline.warehouse.staging import SCHEMA as STAGING_SCHEMA

DAY = timedelta(days=1)
TIMINGS_PREFIX = "run seconds: "  # one log line per run: wall seconds per step, read by benchmarks/


class SourcesFailed(AispendError):
    """One or more sources failed; the others were published."""


class BlockingCheckFailed(AispendError):
    """A blocking check failed on the run's copy, so nothing was published."""

    def __init__(self, message: str, outcomes: list[StepOutcome]) -> None:
        super().__init__(message)
        self.outcomes = outcomes


def _spec(key: dg.AssetKey, description: str, group: str, kinds: set[str], deps: list[dg.AssetKey], **tags: str):
    return dg.AssetSpec(
        key,
        description=description,
        group_name=group,
        kinds=kinds,
        deps=deps,
        owners=OWNERS,
        tags=tags,
        skippable=True,
    )


RAW_KEYS = [raw_asset_key(s) for s in SOURCES]
SPECS = [
    *(
        _spec(
            raw_asset_key(s),
            f"{s.title}: {s.raw_table.description}",
            "ingest",
            set(s.kinds),
            [],
            layer="raw",
            provider=s.name,
            data_lag=s.data_lag,
        )
        for s in SOURCES
    ),
    _spec(normalise.KEY, LINE_ITEMS.description, "normalise", {"sql", "duckdb", "pandera"}, RAW_KEYS, layer="staging"),
    _spec(allocate.KEY, COST_LINE_ITEMS.description, "allocate", {"sql", "duckdb"}, [normalise.KEY], layer="marts"),
    _spec(marts.ROLLUP_KEY, TEAM_DAILY_SPEND.description, "marts", {"sql", "duckdb"}, [allocate.KEY], layer="marts"),
    _spec(
        marts.FOCUS_KEY,
        "cost_line_items under FOCUS 1.0 column names (custom columns x_*), as a view.",
        "marts",
        {"sql", "duckdb"},
        [allocate.KEY],
        layer="marts",
    ),
    _spec(unit_costs.KEY, unit_costs.DESCRIPTION, "marts", {"sql", "duckdb"}, [allocate.KEY], layer="marts"),
    _spec(
        anomalies.KEY,
        anomalies.DESCRIPTION,
        "marts",
        {"pandas", "duckdb"},
        [marts.ROLLUP_KEY],
        layer="marts",
    ),
    _spec(
        report.INVENTORY_KEY,
        "Every source the product knows (API sources and manual vendors): configured or not, last data, "
        "spend in the last 30 days, coverage gaps.",
        "marts",
        {"sql", "duckdb"},
        [allocate.KEY],
        layer="marts",
    ),
    _spec(
        report.REPORT_KEY,
        report.REPORT_DESCRIPTION,
        "marts",
        {"html", "plotly"},
        [marts.ROLLUP_KEY, anomalies.KEY, report.INVENTORY_KEY, unit_costs.KEY],
        layer="report",
    ),
]
CHECK_SPECS = [
    *(
        check
        for key in RAW_KEYS
        for check in (
            dg.AssetCheckSpec(
                TOTAL_CHECK, asset=key, blocking=True, description="Stored total = what the source sent."
            ),
            dg.AssetCheckSpec(
                FRESHNESS_CHECK,
                asset=key,
                description="Data ends within ~36 hours (daily sources) or ~40 days (monthly invoices).",
            ),
        )
    ),
    dg.AssetCheckSpec(
        normalise.RAW_CHECK,
        asset=normalise.KEY,
        blocking=True,
        description="Per provider and day, line items total exactly what the raw tables hold.",
    ),
    dg.AssetCheckSpec(normalise.UNIQUE_CHECK, asset=normalise.KEY, blocking=True, description="line_id is unique."),
    dg.AssetCheckSpec(
        allocate.LINES_CHECK,
        asset=allocate.KEY,
        blocking=True,
        description="Every line item is attributed once: per line, attributed shares sum to its cost.",
    ),
    dg.AssetCheckSpec(allocate.UNIQUE_CHECK, asset=allocate.KEY, blocking=True, description="cost_line_id is unique."),
    dg.AssetCheckSpec(
        allocate.INVOICE_CHECK,
        asset=allocate.KEY,
        blocking=True,
        description="Each invoice month the run touched sums exactly to its invoices, whatever days the run covered.",
    ),
    dg.AssetCheckSpec(allocate.UNALLOCATED_CHECK, asset=allocate.KEY, description=allocate.UNALLOCATED_DESCRIPTION),
    dg.AssetCheckSpec(
        anomalies.DELIVERY_CHECK,
        asset=anomalies.KEY,
        description="Warns when an alert could not be posted to the webhook (retried by the next run).",
    ),
    dg.AssetCheckSpec(
        unit_costs.RECONCILE_CHECK,
        asset=unit_costs.KEY,
        blocking=True,
        description="Per month, the unit-cost rows' cost equals cost_line_items' Usage (and seat) charges exactly.",
    ),
    dg.AssetCheckSpec(
        marts.RECONCILE_CHECK,
        asset=marts.ROLLUP_KEY,
        blocking=True,
        description="Per day, the rollup equals cost_line_items exactly (to the cent and beyond).",
    ),
]


@dataclass
class RunResult:
    outcomes: list[StepOutcome]
    failed: list[SourcePull]


def transform_window(start: date, end: date, pulls: list[SourcePull]) -> tuple[date, date]:
    """The days the transforms rebuild: the run's range, widened to every day outside it whose raw rows a
    source changed (a day a source answered for again, unchanged, keeps its line items)."""
    days = [day for p in pulls if p.status == "loaded" for day in p.changed_outside]
    return min([start, *days]), max([end, *(d + timedelta(days=1) for d in days)])


def run_pipeline(
    warehouse: WarehouseResource,
    seeds: SeedsResource,
    sources: list[tuple[Source, SourceResource]],
    selected: set[dg.AssetKey],
    configured: dict[str, bool],
    start: date,
    end: date,
    run_id: str,
    log: Callable[[str], None],
) -> RunResult:
    """Everything a run does, in order; publishes once, or raises and publishes nothing."""
    validate_settings()
    began = time.perf_counter()
    timings: dict[str, float] = {}
    with warehouse.publishing(run_id) as building:  # fails at once if another run or a writer holds the file
        timings["publish"] = time.perf_counter() - began  # the working copy, then (below) the swap
        pulled_at = time.perf_counter()
        pulls = pull_sources(building, sources, start, end, log)
        timings["pull"] = time.perf_counter() - pulled_at

        def step(name: str, build: Callable[..., StepOutcome], *args: object) -> None:
            stepped = time.perf_counter()
            outcome = build(*args)
            seconds = time.perf_counter() - stepped
            timings[name] = timings.get(name, 0.0) + seconds
            outcome.metadata["seconds"] = round(seconds, 3)
            outcomes.append(outcome)

        outcomes: list[StepOutcome] = []
        for p in pulls:
            if p.status != "failed":
                step("store_raw", store_pull, building, p, start, end)
        building.execute(f"DROP SCHEMA IF EXISTS {STAGING_SCHEMA} CASCADE")  # staged pulls are never published
        first, after = transform_window(start, end, pulls)
        if normalise.KEY in selected:
            step("line_items", normalise.build_line_items, building, first, after)
        if allocate.KEY in selected:
            step("cost_line_items", allocate.build_cost_line_items, building, seeds.path, first, after, end - DAY)
        if marts.ROLLUP_KEY in selected:
            step("team_daily_spend", marts.build_team_daily_spend, building, first, after, end - DAY)
        if marts.FOCUS_KEY in selected:
            step("focus_view", marts.build_focus_view, building, first, after)
        if unit_costs.KEY in selected:
            step("unit_costs", unit_costs.build_unit_costs_step, building, first, after)
        if report.INVENTORY_KEY in selected:
            step("source_inventory", report.build_inventory, building, end - DAY, configured)
        failed_checks = [(o.key, c) for o in outcomes for c in o.failed_blocking_checks()]
        if failed_checks:
            key, check = failed_checks[0]
            raise BlockingCheckFailed(
                f"blocking check {check.name} on {key.to_user_string()} failed ({_first_detail(check.metadata)}); "
                f"nothing was published, the tables are as before the run",
                outcomes,
            )
        if anomalies.KEY in selected:  # the data is checked: score it and alert, then publish both together
            step("anomalies", anomalies.build_anomalies, building, seeds.path, first, after, end - DAY)
        if report.REPORT_KEY in selected:  # checks passed: the report shows what is about to be published
            step("report", report.write_analyst_report, building, warehouse.path, end - DAY)
        swap = time.perf_counter()
    timings["publish"] += time.perf_counter() - swap
    timings["total"] = time.perf_counter() - began
    for pulled in pulls:
        timings[f"fetch:{pulled.source.name}"] = pulled.fetch_seconds
        timings[f"validate_raw:{pulled.source.name}"] = pulled.seconds - pulled.fetch_seconds
    log(TIMINGS_PREFIX + json.dumps({k: round(v, 3) for k, v in timings.items()}))
    log(f"published {warehouse.database} for {first} .. {after - timedelta(days=1)}")
    return RunResult(outcomes, [p for p in pulls if p.status == "failed"])


def _first_detail(metadata: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in list(metadata.items())[:2])


def _results(context: dg.AssetExecutionContext, outcome: StepOutcome, materialize: bool) -> Iterator:
    selected_checks = context.selected_asset_check_keys
    if materialize:
        yield dg.MaterializeResult(asset_key=outcome.key, metadata=outcome.metadata)
    for check in outcome.checks:
        if dg.AssetCheckKey(outcome.key, check.name) in selected_checks:
            yield check.result(outcome.key)


@dg.multi_asset(
    name="aispend_run",
    specs=SPECS,
    check_specs=CHECK_SPECS,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    can_subset=True,
    required_resource_keys={"warehouse", "seeds", *(s.resource_key for s in SOURCES)},
)
def aispend_run(context: AssetExecutionContext) -> Iterator:
    start, end = partition_dates(context)
    selected = set(context.selected_asset_keys)
    sources = [(s, getattr(context.resources, s.resource_key)) for s in SOURCES if raw_asset_key(s) in selected]
    try:
        result = run_pipeline(
            context.resources.warehouse,
            context.resources.seeds,
            sources,
            selected,
            {s.name: getattr(context.resources, s.resource_key).is_configured for s in SOURCES},
            start,
            end,
            context.run_id,
            context.log.info,
        )
    except BlockingCheckFailed as exc:
        for outcome in exc.outcomes:
            yield from _results(context, outcome, materialize=False)
        raise
    for outcome in result.outcomes:
        yield from _results(context, outcome, materialize=True)
    if result.failed:
        others = len(sources) - len(result.failed)
        raise SourcesFailed(
            "; ".join(p.error or p.source.name for p in result.failed)
            + f" (stored days of the failed source(s) kept; {others} other source(s) published)"
        )
