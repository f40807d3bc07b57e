"""Manual invoices as a source: each invoice spread over its month's days, to the cent.

Each day's share lands in that day's partition with `data_lag = 'monthly'` and
`cost_source = 'invoice'`; the shares of one invoice always sum exactly to the invoice.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from pathlib import Path

from aispend_pipeline.core.days import days_between
from aispend_pipeline.core.money import spread_over_days
from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.seed_files import ManualInvoice, read_manual_invoices
from aispend_pipeline.settings import DEFAULT_SEEDS_DIR, env_or
from aispend_pipeline.sources.base import RawPull, Source, SourceResource, raw_frame

KEY_COLUMNS = ("usage_date", "provider", "invoice_month", "service", "team", "charge_category")

RAW_TABLE = Table(
    "raw",
    "manual_invoice_days",
    (
        Column("usage_date", "DATE", nullable=False),
        Column("provider", nullable=False),
        Column("vendor", nullable=False),
        Column("service", nullable=False),
        Column("invoice_month", nullable=False),
        Column("invoice_line", "BIGINT", nullable=False, description="Line of manual_invoices.csv."),
        Column("amount", DECIMAL, nullable=False, description="Invoice total in its own currency."),
        Column("currency", nullable=False),
        Column("amount_usd", DECIMAL, nullable=False, description="Invoice total in USD, rounded to the cent."),
        Column("cost_usd", DECIMAL, nullable=False, description="This day's share of amount_usd."),
        Column("team"),
        Column("cost_centre"),
        Column("charge_category", nullable=False),
        Column("notes"),
        Column("line_ordinal", "BIGINT", nullable=False),
    ),
    description="manual_invoices.csv, one row per invoice and day of its month.",
    unique_key=(*KEY_COLUMNS, "line_ordinal"),
)

NORMALISE_SQL = """
SELECT
    md5(to_json(['invoice', provider, CAST(usage_date AS VARCHAR), invoice_month, service, team, charge_category,
        CAST(line_ordinal AS VARCHAR)])) AS line_id,
    usage_date,
    provider,
    service,
    charge_category,
    coalesce(notes, vendor || ' invoice ' || invoice_month) AS charge_description,
    cost_usd,
    'monthly' AS data_lag,
    'invoice' AS cost_source,
    team AS assigned_team,
    cost_centre AS assigned_cost_centre
FROM raw.manual_invoice_days
WHERE usage_date >= $start AND usage_date < $end
"""


class ManualInvoicesResource(SourceResource):
    """`manual_invoices.csv` (and `fx_rates.csv`) in the seeds directory (`AISPEND_SEEDS_DIR`)."""

    seeds_dir: str = DEFAULT_SEEDS_DIR

    def pull(self, start: date, end: date) -> RawPull:
        """Whole months, whatever the range: an invoice's month is always written (and replaced) whole."""
        first, after = whole_months(start, end)
        invoices = read_manual_invoices(Path(self.seeds_dir))
        rows = [row for invoice in invoices for row in invoice_days(invoice) if first <= row["usage_date"] < after]
        return RawPull(raw_frame(rows, RAW_TABLE, KEY_COLUMNS), days=frozenset(days_between(first, after)))


def whole_months(start: date, end: date) -> tuple[date, date]:
    """[first day of start's month, first day of the month after the last day of [start, end))."""
    last = end - timedelta(days=1)
    after = date(last.year + last.month // 12, last.month % 12 + 1, 1)
    return start.replace(day=1), after


def invoice_days(invoice: ManualInvoice) -> list[dict[str, object]]:
    """One raw row per day of the invoice's month, shares summing exactly to the invoice."""
    first = invoice.month_start
    days = list(days_between(first, first + timedelta(days=calendar.monthrange(first.year, first.month)[1])))
    return [
        {
            "usage_date": day,
            "provider": invoice.provider,
            "vendor": invoice.vendor,
            "service": invoice.service,
            "invoice_month": invoice.invoice_month,
            "invoice_line": invoice.line,
            "amount": invoice.amount,
            "currency": invoice.currency,
            "amount_usd": invoice.amount_usd,
            "cost_usd": share,
            "team": invoice.team,
            "cost_centre": invoice.cost_centre,
            "charge_category": invoice.charge_category,
            "notes": invoice.notes,
        }
        for day, share in zip(days, spread_over_days(invoice.amount_usd, days), strict=True)
    ]


SOURCE = Source(
    name="manual_invoices",
    title="Manual invoices",
    kinds=frozenset({"csv", "duckdb"}),
    raw_table=RAW_TABLE,
    normalise_sql=NORMALISE_SQL,
    resource_key="manual_invoices",
    build_resource=lambda: ManualInvoicesResource(seeds_dir=env_or("AISPEND_SEEDS_DIR", DEFAULT_SEEDS_DIR)),
    data_lag="monthly",
    money_column="cost_usd",
    billing_model="subscription",
    has_api=False,
)
