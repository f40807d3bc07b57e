"""The demo's organisation as seed files, generated for the demo's own days so that any day's demo shows it all.

Fixed example seeds go stale (invoices for months long past show nothing in a demo run later), and a
user's `seeds/` is theirs: the demo writes its own directory beside its DuckDB file instead, from every
simulator's `demo_mapping_rows()`, an example reorganisation in the middle of the window, and invoices
of monthly-lag vendors for every month the window touches. Only the package's own code is used, so an
editable install and a built wheel behave alike.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from pathlib import Path

from aispend_pipeline.seed_files import (
    FX_RATE_FIELDS,
    FX_RATES_FILE,
    MANUAL_INVOICE_FIELDS,
    MANUAL_INVOICES_FILE,
    ORG_MAPPING_FIELDS,
    ORG_MAPPING_FILE,
    read_manual_invoices,
    read_org_mapping,
)

DEMO_SEEDS_DIR = "demo-seeds"  # beside the demo's DuckDB file
# Invoices of vendors with no billing API, the same every month: (vendor, service, amount, currency, team,
# cost centre, notes). JetBrains bills in EUR, so the month's rate goes to fx_rates.csv.
DEMO_INVOICES = (
    ("Cursor", "Cursor Business seats", "2400.00", "USD", "platform", "CC-100", "60 seats x 40 USD"),
    ("JetBrains AI", "AI Pro licences", "850.00", "EUR", "data-platform", "CC-300", "85 licences x 10 EUR"),
)
DEMO_EUR_RATE = "1.0835"


def months_touched(first: date, last: date) -> list[str]:
    """Every `YYYY-MM` that has a day in [first, last]."""
    months, day = [], first.replace(day=1)
    while day <= last:
        months.append(f"{day:%Y-%m}")
        day = (day + timedelta(days=32)).replace(day=1)
    return months


def example_mapping_rows(first: date, last: date) -> list[dict[str, str]]:
    """Rules no single simulator owns: a reorganisation halfway through the window (the growth project
    moves to marketing, so `valid_from`/`valid_to` show in the demo) and a rule for any provider's model."""
    moved = (first + (last - first) / 2).isoformat()
    project = {"provider": "openai", "dimension": "project_id", "value": "proj_growth"}
    return [
        project | {"team": "growth", "cost_centre": "CC-410", "product": "Growth Experiments", "valid_to": moved},
        project | {"team": "marketing", "cost_centre": "CC-420", "product": "Marketing Site", "valid_from": moved},
        {"provider": "*", "dimension": "model", "value": "text-embedding-3-small", "team": "data-platform"}
        | {"cost_centre": "CC-300", "product": "Data Platform"},
    ]


def invoice_rows(first: date, last: date) -> list[dict[str, str]]:
    """One invoice per demo vendor for each month the window touches (amounts fixed, months relative)."""
    names = ("vendor", "service", "amount", "currency", "team", "cost_centre", "notes")
    return [
        dict(zip(names, invoice, strict=True)) | {"invoice_month": month, "charge_category": "Purchase"}
        for month in months_touched(first, last)
        for invoice in DEMO_INVOICES
    ]


def write_demo_seeds(directory: Path, first: date, last: date, simulator_rows: Iterable[Mapping[str, str]]) -> Path:
    """Write the demo's seed files into `directory` (replacing the demo's earlier ones) and check them."""
    directory.mkdir(parents=True, exist_ok=True)
    months = months_touched(first, last)
    _write(directory / ORG_MAPPING_FILE, ORG_MAPPING_FIELDS, [*simulator_rows, *example_mapping_rows(first, last)])
    _write(directory / MANUAL_INVOICES_FILE, MANUAL_INVOICE_FIELDS, invoice_rows(first, last))
    rates = [{"month": month, "currency": "EUR", "usd_per_unit": DEMO_EUR_RATE} for month in months]
    _write(directory / FX_RATES_FILE, FX_RATE_FIELDS, rates)
    read_org_mapping(directory)  # a generated rule that overlaps another is a defect: fail before the run
    read_manual_invoices(directory)
    return directory


def _write(path: Path, fields: tuple[str, ...], rows: Iterable[Mapping[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
