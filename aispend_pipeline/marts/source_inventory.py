"""`source_inventory`: every source the product knows, whether it is covered, and how fresh its data is.

The first question of a FinOps review is what is *not* in the numbers. One row per provider slug: each
registered source, each known manual vendor (sources/manual_invoices/vendors.py) and each vendor found in
the invoices, with its spend over the 30 days ending `as_of` (exact, from cost_line_items) and the gap, if
any, in plain words. The invoices seed itself has a row too; its spend is on the vendors' rows, so the
column sums to the whole spend of the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import duckdb

from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS
from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.sources.manual_invoices.source import RAW_TABLE as INVOICE_DAYS
from aispend_pipeline.sources.manual_invoices.vendors import KNOWN_VENDORS
from aispend_pipeline.sources.registry import SOURCES

WINDOW_DAYS = 30
# How old the newest data may be before it is a gap: a daily API answers for yesterday within a day or
# two; last month's invoice arrives in the first half of this month.
LAG_TOLERANCE_DAYS = {"daily": 3, "monthly": 45}
HOW_INGESTED = ("api", "invoice", "not covered")
SOURCE_KINDS = ("api source", "invoice seed", "manual vendor", "invoice vendor")

SOURCE_INVENTORY = Table(
    "main",
    "source_inventory",
    (
        Column("provider", nullable=False, description="Provider slug, as in cost_line_items.provider."),
        Column("title", nullable=False),
        Column("source_kind", nullable=False, allowed=SOURCE_KINDS, description="How the product knows it."),
        Column("billing_model", nullable=False, allowed=("tokens", "seats", "subscription")),
        Column("has_api", "BOOLEAN", nullable=False, description="The product reads it from the provider's API."),
        Column("configured", "BOOLEAN", nullable=False, description="API: credentials set; vendor: invoiced."),
        Column("how_ingested", nullable=False, allowed=HOW_INGESTED),
        Column("last_data_date", "DATE", description="Newest day with cost lines, up to as_of."),
        Column("data_lag", nullable=False, description="Expected freshness: daily (API) or monthly (invoice)."),
        Column("days_since_data", "INTEGER", description="as_of minus last_data_date."),
        Column("spend_30d_usd", DECIMAL, description="Exact spend of the 30 days ending as_of."),
        Column("coverage_gap", description="What is missing, in words; NULL when covered and fresh."),
        Column("as_of", "DATE", nullable=False),
    ),
    description="Every source the product knows: billing model, API, configured, freshness, 30-day spend, gaps.",
    date_column="as_of",
    unique_key=("provider",),
)


@dataclass(frozen=True)
class InventorySummary:
    rows: int
    spend_30d_usd: Decimal
    gaps: list[tuple[str, str]]  # (provider, coverage_gap)


def known_sources(configured: dict[str, bool]) -> list[tuple[object, ...]]:
    """(ordinal, provider, title, kind, billing model, has_api, configured, data_lag, enabled_by) per known slug.

    A registered source wins over a known vendor of the same slug; a vendor's `configured` is left to the
    SQL (it has invoices or not).
    """
    rows: list[tuple[object, ...]] = []
    for source in SOURCES:
        kind = "api source" if source.has_api else "invoice seed"
        setting = " and ".join(source.enabled_by) or None
        is_configured = configured.get(source.name, False)
        rows.append((len(rows), source.name, source.title, kind, source.billing_model, source.has_api))
        rows[-1] += (is_configured, source.data_lag, setting)
    registered = {source.name for source in SOURCES}
    for vendor in KNOWN_VENDORS:
        if vendor.slug not in registered:
            rows.append((len(rows), vendor.slug, vendor.title, "manual vendor", vendor.billing_model, False))
            rows[-1] += (None, "monthly", None)
    return rows


INVENTORY_SQL = f"""
WITH invoiced AS (
    SELECT provider, min(vendor) AS title FROM {INVOICE_DAYS.qualified_name} GROUP BY provider
),
everyone AS (
    SELECT ordinal, provider, title, source_kind, billing_model, has_api,
        coalesce(configured, provider IN (SELECT provider FROM invoiced)) AS configured, data_lag, enabled_by
    FROM inventory_known
    UNION ALL
    SELECT 1000 + row_number() OVER (ORDER BY provider), provider, title, 'invoice vendor', 'subscription', false,
        true, 'monthly', NULL
    FROM invoiced WHERE provider NOT IN (SELECT provider FROM inventory_known)
),
lines AS (
    SELECT provider,
        max(usage_date) FILTER (WHERE usage_date <= $as_of) AS last_data_date,
        coalesce(sum(cost_usd) FILTER (WHERE usage_date > $as_of - {WINDOW_DAYS} AND usage_date <= $as_of), 0)
            AS spend_30d_usd,
        bool_or(cost_source = 'invoice') AS invoiced
    FROM {COST_LINE_ITEMS.qualified_name} GROUP BY provider
),
invoice_seed AS (
    SELECT max(usage_date) AS last_data_date FROM {COST_LINE_ITEMS.qualified_name}
    WHERE cost_source = 'invoice' AND usage_date <= $as_of
),
joined AS (
    SELECT e.*,
        CASE WHEN e.source_kind = 'invoice seed' THEN (SELECT last_data_date FROM invoice_seed)
            ELSE l.last_data_date END AS last_data_date,
        CASE WHEN e.source_kind = 'invoice seed' THEN NULL ELSE coalesce(l.spend_30d_usd, 0) END AS spend_30d_usd,
        CASE WHEN e.has_api THEN 'api'
            WHEN e.source_kind = 'invoice seed' OR e.configured OR coalesce(l.invoiced, false) THEN 'invoice'
            ELSE 'not covered' END AS how_ingested
    FROM everyone e LEFT JOIN lines l USING (provider)
),
aged AS (
    SELECT *, date_diff('day', last_data_date, $as_of) AS days_since_data FROM joined
)
SELECT provider, title, source_kind, billing_model, has_api, configured, how_ingested, last_data_date, data_lag,
    days_since_data, spend_30d_usd,
    CASE
        WHEN has_api AND NOT configured THEN 'not configured: set ' || coalesce(enabled_by, 'its settings')
        WHEN how_ingested = 'not covered' THEN 'not covered: no API source and no invoice in manual_invoices.csv'
        WHEN last_data_date IS NULL THEN 'no data up to ' || $as_of
        WHEN data_lag = 'daily' AND days_since_data >= {WINDOW_DAYS} THEN 'no data in {WINDOW_DAYS} days'
        WHEN days_since_data > CASE data_lag WHEN 'daily' THEN {LAG_TOLERANCE_DAYS["daily"]}
            ELSE {LAG_TOLERANCE_DAYS["monthly"]} END
            THEN 'last data ' || last_data_date || ', ' || days_since_data || ' days ago; expected ' || data_lag
    END AS coverage_gap,
    $as_of AS as_of
FROM aged
ORDER BY ordinal
"""


def build_source_inventory(
    con: duckdb.DuckDBPyConnection, as_of: date, configured: dict[str, bool]
) -> InventorySummary:
    """Replace main.source_inventory as of `as_of`; `configured` maps each registered source's name to
    its resource's `is_configured` (the caller knows the resources, this function only the data)."""
    for table in (COST_LINE_ITEMS, INVOICE_DAYS):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.schema}")
        con.execute(table.ddl())
    con.execute(
        "CREATE OR REPLACE TEMP TABLE inventory_known (ordinal INTEGER, provider VARCHAR, title VARCHAR, "
        "source_kind VARCHAR, billing_model VARCHAR, has_api BOOLEAN, configured BOOLEAN, data_lag VARCHAR, "
        "enabled_by VARCHAR)"
    )
    con.executemany("INSERT INTO inventory_known VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", known_sources(configured))
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SOURCE_INVENTORY.schema}")
    con.execute(
        f"CREATE OR REPLACE TABLE {SOURCE_INVENTORY.qualified_name} AS "
        f"SELECT {SOURCE_INVENTORY.casts_sql} FROM ({INVENTORY_SQL})",
        {"as_of": as_of},
    )
    con.execute("DROP TABLE inventory_known")
    rows, spend = con.execute(
        f"SELECT count(*), coalesce(sum(spend_30d_usd), 0) FROM {SOURCE_INVENTORY.qualified_name}"
    ).fetchone() or (0, 0)
    gaps = con.execute(
        f"SELECT provider, coverage_gap FROM {SOURCE_INVENTORY.qualified_name} WHERE coverage_gap IS NOT NULL"
    ).fetchall()
    return InventorySummary(int(rows), Decimal(spend), [(p, g) for p, g in gaps])
