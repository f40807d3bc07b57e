"""Materialisation metadata: row counts and exact totals (as text, never floats) for the Dagster UI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

import dagster as dg

from aispend_pipeline.core.money import money_text
from aispend_pipeline.schemas.table import Table
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse


def usd(amount: Decimal | None) -> dg.MetadataValue:
    """An exact amount as text, without the trailing zeros of the DECIMAL scale."""
    text = money_text(amount or Decimal(0))
    return dg.MetadataValue.text(text.rstrip("0").rstrip(".") if "." in text else text)


def range_metadata(start: date, end: date) -> dict[str, dg.MetadataValue]:
    return {"days": dg.MetadataValue.text(f"{start} .. {end - timedelta(days=1)} ({(end - start).days} days)")}


def days_text(days: Sequence[date]) -> dg.MetadataValue:
    """A sorted list of days as 'first .. last (n days)'."""
    if not days:
        return dg.MetadataValue.text("none")
    return dg.MetadataValue.text(f"{min(days)} .. {max(days)} ({len(days)} days)")


def days_summary(
    warehouse: DuckDBWarehouse, table: Table, days: Sequence[date], money_column: str = "cost_usd"
) -> tuple[int, Decimal]:
    """Row count and exact total of `table` over exactly `days`."""
    row = warehouse.rows(
        f"SELECT count(*), coalesce(sum({money_column}), 0) FROM {table.qualified_name} "
        f"WHERE {table.date_column} IN (SELECT unnest($days))",
        {"days": sorted(days)},
    )[0]
    return int(row[0]), Decimal(row[1])


def stored_summary(
    warehouse: DuckDBWarehouse, table: Table, start: date, end: date, money_column: str = "cost_usd"
) -> tuple[int, Decimal]:
    """Row count and exact total of `table` over [start, end)."""
    row = warehouse.rows(
        f"SELECT count(*), coalesce(sum({money_column}), 0) FROM {table.qualified_name} "
        f"WHERE {table.date_column} >= $start AND {table.date_column} < $end",
        {"start": start, "end": end},
    )[0]
    return int(row[0]), Decimal(row[1])


def totals_by_provider_markdown(warehouse: DuckDBWarehouse, table: Table, start: date, end: date) -> dg.MetadataValue:
    rows = warehouse.rows(
        f"SELECT provider, count(*), sum(cost_usd) FROM {table.qualified_name} "
        "WHERE usage_date >= $start AND usage_date < $end GROUP BY provider ORDER BY provider",
        {"start": start, "end": end},
    )
    lines = ["| provider | rows | cost_usd |", "|---|---:|---:|"]
    lines += [f"| {p} | {n} | {money_text(total)} |" for p, n, total in rows]
    return dg.MetadataValue.md("\n".join(lines))
