"""Materialisation metadata: row counts and exact totals (as text, never floats) for the Dagster UI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
import duckdb

from aispend_pipeline.core.money import trimmed_money_text
from aispend_pipeline.schemas.table import Table
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse


def usd(amount: Decimal | None) -> dg.MetadataValue:
    """An exact amount as text, without the trailing zeros of the DECIMAL scale."""
    return dg.MetadataValue.text(trimmed_money_text(amount or Decimal(0)))


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


# Preview columns, where a table has them: what a reviewer checks first.
PREVIEW_COLUMNS = ("usage_date", "provider", "service", "model", "team", "charge_category", "cost_usd", "amount_usd")


def _md_value(value: object) -> str:
    if value is None:
        return ""
    text = trimmed_money_text(value) if isinstance(value, Decimal) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: list[str], rows: list[tuple[object, ...]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_md_value(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def preview_markdown(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None, limit: int = 5
) -> dg.MetadataValue:
    """The first `limit` rows of a query as a markdown table (decimals exact, as text)."""
    cursor = con.execute(f"SELECT * FROM ({sql}) LIMIT {limit}", params or {})
    return dg.MetadataValue.md(markdown_table([d[0] for d in cursor.description], cursor.fetchall()))


def by_provider_markdown(
    con: duckdb.DuckDBPyConnection, table: Table, start: date, end: date, money_column: str = "cost_usd"
) -> dg.MetadataValue:
    """Rows and exact total per provider over [start, end)."""
    rows = con.execute(
        f"SELECT provider, count(*) AS rows, sum({money_column}) AS {money_column} FROM {table.qualified_name} "
        f"WHERE {table.date_column} >= $start AND {table.date_column} < $end GROUP BY provider ORDER BY provider",
        {"start": start, "end": end},
    ).fetchall()
    return dg.MetadataValue.md(markdown_table(["provider", "rows", money_column], rows))


def top_teams_markdown(con: duckdb.DuckDBPyConnection, table: Table, day: date, limit: int = 5) -> dg.MetadataValue:
    """The day's top teams by spend, with their share of the day (a table with team and cost_usd)."""
    rows = con.execute(
        f"SELECT team, sum(cost_usd) AS cost_usd, "
        f"CAST(round(100 * sum(cost_usd) / nullif(sum(sum(cost_usd)) OVER (), 0), 1) AS DECIMAL(18, 1)) AS share_pct "
        f"FROM {table.qualified_name} WHERE usage_date = $day GROUP BY team ORDER BY cost_usd DESC, team LIMIT {limit}",
        {"day": day},
    ).fetchall()
    return dg.MetadataValue.md(f"**{day}**\n\n" + markdown_table(["team", "cost_usd", "share %"], rows))


def table_metadata(
    warehouse: DuckDBWarehouse,
    table: Table,
    start: date,
    end: date,
    money_column: str = "cost_usd",
    top_day: date | None = None,
) -> dict[str, dg.MetadataValue]:
    """What the UI shows for a table over [start, end): totals per provider, a preview, `top_day`'s top teams."""
    names = table.column_names
    shown = [c for c in PREVIEW_COLUMNS if c in names] or names[:8]
    in_range = f"{table.date_column} >= $start AND {table.date_column} < $end"
    params = {"start": start, "end": end}
    with warehouse.connect() as con:
        metadata = {
            "preview": preview_markdown(
                con,
                f"SELECT {', '.join(shown)} FROM {table.qualified_name} WHERE {in_range} "
                f"ORDER BY {table.date_column} DESC{f', {money_column} DESC' if money_column in names else ''}",
                params,
            )
        }
        if "provider" in names and money_column in names:
            metadata["by_provider"] = by_provider_markdown(con, table, start, end, money_column)
        if top_day is not None:
            metadata["top_teams"] = top_teams_markdown(con, table, top_day)
    return metadata
