"""Reconciliation between layers, to the last decimal: the queries behind the blocking asset checks.

Each function returns the keys where two layers disagree (empty = reconciled), comparing exact
DECIMAL sums per key with a full outer join, so a key missing on either side counts too.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from aispend_pipeline.core.days import days_between
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS, LINE_ITEMS, TEAM_DAILY_SPEND
from aispend_pipeline.schemas.table import Table
from aispend_pipeline.seed_files import ManualInvoice
from aispend_pipeline.sources.base import Source
from aispend_pipeline.sources.registry import SOURCES
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

IN_RANGE = "usage_date >= $start AND usage_date < $end"


def differences(
    warehouse: DuckDBWarehouse, expected_sql: str, actual_sql: str, keys: tuple[str, ...], start: date, end: date
) -> list[tuple]:
    """(*key, expected total, actual total) for every key whose `total` differs between two queries."""
    on = " AND ".join(f"e.{k} IS NOT DISTINCT FROM a.{k}" for k in keys)
    key_columns = ", ".join(f"coalesce(e.{k}, a.{k}) AS {k}" for k in keys)
    return warehouse.rows(
        f"""
        WITH e AS ({expected_sql}), a AS ({actual_sql})
        SELECT {key_columns}, e.total, a.total
        FROM e FULL JOIN a ON {on}
        WHERE e.total IS DISTINCT FROM a.total
        ORDER BY ALL
        """,
        {"start": start, "end": end},
    )


def _sum_by(table: str, keys: tuple[str, ...], money: str = "cost_usd") -> str:
    columns = ", ".join(keys)
    return f"SELECT {columns}, sum({money}) AS total FROM {table} WHERE {IN_RANGE} GROUP BY {columns}"


def raw_total_sql(source: Source) -> str:
    """Per provider and day, a raw table's own USD total (independent of the normalise SQL)."""
    table = source.raw_table
    provider = "provider" if "provider" in table.column_names else f"'{source.name}'"
    return (
        f"SELECT {provider} AS provider, usage_date, sum({source.money_column}) AS total "
        f"FROM {table.qualified_name} WHERE {IN_RANGE} GROUP BY ALL"
    )


def raw_vs_line_items(warehouse: DuckDBWarehouse, start: date, end: date) -> list[tuple]:
    """Provider-days whose line items do not total exactly what the raw tables hold.

    Two sources may fill one provider's day (an `openai` invoice beside the OpenAI API), so the
    per-source totals are added up per provider and day before comparing.
    """
    union = " UNION ALL ".join(raw_total_sql(s) for s in SOURCES)
    raw = f"SELECT provider, usage_date, sum(total) AS total FROM ({union}) GROUP BY ALL"
    keys = ("provider", "usage_date")
    return differences(warehouse, raw, _sum_by(LINE_ITEMS.qualified_name, keys), keys, start, end)


def _compare(
    warehouse: DuckDBWarehouse, expected: str, actual: str, keys: tuple[str, ...], start: date, end: date
) -> list[tuple]:
    """Differences between two tables' totals per key."""
    return differences(warehouse, _sum_by(expected, keys), _sum_by(actual, keys), keys, start, end)


def unbalanced_allocations(warehouse: DuckDBWarehouse, start: date, end: date) -> list[tuple]:
    """Line items whose attributed lines do not sum exactly to the line (lost, doubled or mis-split).

    A line item's own amount is its total: its id is unique (a rule of the line-item schema, checked
    before the line items are written), so only the attributed side is grouped."""
    lines = f"SELECT line_id, cost_usd AS total FROM {LINE_ITEMS.qualified_name} WHERE {IN_RANGE}"
    attributed = _sum_by(COST_LINE_ITEMS.qualified_name, ("line_id",))
    return differences(warehouse, lines, attributed, ("line_id",), start, end)


def rollup_mismatches(warehouse: DuckDBWarehouse, start: date, end: date) -> list[tuple]:
    """(day, team, provider) rows of team_daily_spend that differ from cost_line_items."""
    keys = ("usage_date", "team", "provider")
    return _compare(warehouse, COST_LINE_ITEMS.qualified_name, TEAM_DAILY_SPEND.qualified_name, keys, start, end)


def duplicate_keys(warehouse: DuckDBWarehouse, table: Table, start: date, end: date) -> list[tuple]:
    """Keys of `table` that occur more than once over [start, end) (with their count)."""
    key = ", ".join(table.unique_key)
    return warehouse.rows(
        f"SELECT {key}, count(*) FROM {table.qualified_name} WHERE {IN_RANGE} "
        f"GROUP BY {key} HAVING count(*) > 1 ORDER BY ALL LIMIT 10",
        {"start": start, "end": end},
    )


def invoice_month_mismatches(
    warehouse: DuckDBWarehouse, invoices: list[ManualInvoice], start: date, end: date
) -> list[tuple]:
    """(provider, month, invoiced, stored) for each invoice month the run touched whose days do not sum
    exactly to the seed's invoices (a month is compared whole, whatever part of it the run covered)."""
    months = {day.strftime("%Y-%m") for day in days_between(start, end)}
    expected: dict[tuple[str, str], Decimal] = {}
    for invoice in invoices:
        key = (invoice.provider, invoice.invoice_month)
        if invoice.invoice_month in months:
            expected[key] = expected.get(key, Decimal(0)) + invoice.amount_usd
    stored = {
        (provider, month): Decimal(total)
        for provider, month, total in warehouse.rows(
            f"SELECT provider, strftime(usage_date, '%Y-%m') AS month, sum(cost_usd) FROM {LINE_ITEMS.qualified_name} "
            "WHERE cost_source = 'invoice' AND month IN (SELECT unnest($months)) GROUP BY ALL",
            {"months": sorted(months)},
        )
    }
    return sorted(
        (provider, month, expected.get((provider, month)), stored.get((provider, month)))
        for provider, month in set(expected) | set(stored)
        if expected.get((provider, month), Decimal(0)) != stored.get((provider, month), Decimal(0))
    )
