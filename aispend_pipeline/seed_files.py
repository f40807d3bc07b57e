"""Seed files (CSV, in AISPEND_SEEDS_DIR): parsed strictly, every error names file, line and field.

Every seed file is optional: a missing file means no rules or invoices. The header is line 1.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from aispend_pipeline.core.money import parse_money, round_to_cent
from aispend_pipeline.errors import SeedError
from aispend_pipeline.schemas.line_items import ALLOCATION_KEY_COLUMNS, CHARGE_CATEGORIES
from aispend_pipeline.sources.manual_invoices.vendors import VENDOR_SLUGS

ORG_MAPPING_FILE = "org_mapping.csv"
MANUAL_INVOICES_FILE = "manual_invoices.csv"
FX_RATES_FILE = "fx_rates.csv"
ALERT_THRESHOLDS_FILE = "alert_thresholds.csv"

ORG_MAPPING_FIELDS = ("provider", "dimension", "value", "team", "cost_centre", "product", "valid_from", "valid_to")
MANUAL_INVOICE_FIELDS = (
    "vendor",
    "service",
    "invoice_month",
    "amount",
    "currency",
    "team",
    "cost_centre",
    "charge_category",
    "notes",
)
FX_RATE_FIELDS = ("month", "currency", "usd_per_unit")
ALERT_THRESHOLD_FIELDS = ("team", "provider", "daily_limit_usd")

# Most specific first: a lower rank wins when several rules match a line on its day.
DIMENSION_RANK: dict[str, int] = {
    "api_key_id": 1,
    "user": 2,
    "tag": 3,
    "project_id": 4,
    "workspace_id": 4,
    "resource_group": 4,
    "account_id": 5,
    "subscription_id": 5,
    "gcp_project_id": 5,
    "github_team": 5,
    "litellm_team": 5,
    "model": 6,
    "*": 7,
}
assert set(DIMENSION_RANK) == {*ALLOCATION_KEY_COLUMNS, "*"}

SLUG = re.compile(r"^[a-z0-9_]+$")
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class MappingRule:
    line: int
    provider: str
    dimension: str
    value: str
    team: str
    cost_centre: str | None
    product: str | None
    valid_from: date | None
    valid_to: date | None

    @property
    def rank(self) -> int:
        return DIMENSION_RANK[self.dimension]


@dataclass(frozen=True)
class ManualInvoice:
    line: int
    vendor: str
    provider: str
    service: str
    invoice_month: str
    amount: Decimal
    currency: str
    amount_usd: Decimal
    team: str | None
    cost_centre: str | None
    charge_category: str
    notes: str | None

    @property
    def month_start(self) -> date:
        return date.fromisoformat(f"{self.invoice_month}-01")


@dataclass(frozen=True)
class AlertThreshold:
    """A daily limit for a team on one provider, or on all its providers together (`provider` '*')."""

    line: int
    team: str
    provider: str
    daily_limit_usd: Decimal


def vendor_slug(vendor: str) -> str:
    """`Acme Voice AI` -> `acme_voice_ai`; a vendor with an API source -> that source's slug."""
    squashed = re.sub(r"[^a-z0-9]", "", vendor.lower())
    return VENDOR_SLUGS.get(squashed) or re.sub(r"[^a-z0-9]+", "_", vendor.strip().lower()).strip("_")


def read_org_mapping(seeds_dir: Path) -> list[MappingRule]:
    rules = [_mapping_rule(line, row) for line, row in _rows(seeds_dir / ORG_MAPPING_FILE, ORG_MAPPING_FIELDS)]
    _reject_overlaps(rules)
    return rules


def read_manual_invoices(seeds_dir: Path) -> list[ManualInvoice]:
    rates = read_fx_rates(seeds_dir)
    return [_invoice(line, row, rates) for line, row in _rows(seeds_dir / MANUAL_INVOICES_FILE, MANUAL_INVOICE_FIELDS)]


def read_fx_rates(seeds_dir: Path) -> dict[tuple[str, str], Decimal]:
    rates: dict[tuple[str, str], Decimal] = {}
    for line, row in _rows(seeds_dir / FX_RATES_FILE, FX_RATE_FIELDS):
        month = _required(row, "month", FX_RATES_FILE, line)
        if not MONTH.match(month):
            raise SeedError(FX_RATES_FILE, line, "month", f"{month!r} is not a YYYY-MM month")
        currency = _required(row, "currency", FX_RATES_FILE, line).upper()
        rate = _decimal(row, "usd_per_unit", FX_RATES_FILE, line)
        if rate <= 0:
            raise SeedError(FX_RATES_FILE, line, "usd_per_unit", f"{rate} must be positive")
        rates[(month, currency)] = rate
    return rates


def read_alert_thresholds(seeds_dir: Path) -> list[AlertThreshold]:
    file = ALERT_THRESHOLDS_FILE
    thresholds: list[AlertThreshold] = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in _rows(seeds_dir / file, ALERT_THRESHOLD_FIELDS):
        team = _required(row, "team", file, line)
        provider = _required(row, "provider", file, line).lower()
        if provider != "*" and not SLUG.match(provider):
            raise SeedError(file, line, "provider", f"{provider!r} is not a provider slug (e.g. openai) or '*'")
        limit = _decimal(row, "daily_limit_usd", file, line)
        if limit <= 0:
            raise SeedError(file, line, "daily_limit_usd", f"{limit} must be a positive amount in USD")
        if (team, provider) in seen:
            earlier = seen[team, provider]
            raise SeedError(file, line, "provider", f"{team}/{provider} already has a limit on line {earlier}")
        seen[team, provider] = line
        thresholds.append(AlertThreshold(line=line, team=team, provider=provider, daily_limit_usd=limit))
    return thresholds


def _rows(path: Path, fields: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV with the expected header; a missing file yields nothing."""
    if not path.exists():
        return
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [f for f in fields if f not in header]
        if missing:
            raise SeedError(path.name, 1, missing[0], f"header lacks column(s) {', '.join(missing)}")
        reader.fieldnames = header
        for row in reader:
            if None in row:
                raise SeedError(
                    path.name,
                    reader.line_num,
                    f"column {len(header) + 1}",
                    f"is beyond the header's {len(header)} columns (a stray comma?)",
                )
            if not any((v or "").strip() for v in row.values()):
                continue
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items()}


def _required(row: dict[str, str], field: str, file: str, line: int) -> str:
    value = row.get(field, "")
    if not value:
        raise SeedError(file, line, field, "is empty")
    return value


def _optional(row: dict[str, str], field: str) -> str | None:
    return row.get(field) or None


def _decimal(row: dict[str, str], field: str, file: str, line: int) -> Decimal:
    try:
        return parse_money(_required(row, field, file, line))
    except ValueError as exc:
        raise SeedError(file, line, field, str(exc)) from None


def _date(row: dict[str, str], field: str, line: int) -> date | None:
    value = row.get(field, "")
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SeedError(ORG_MAPPING_FILE, line, field, f"{value!r} is not an ISO date (YYYY-MM-DD)") from None


def _mapping_rule(line: int, row: dict[str, str]) -> MappingRule:
    file = ORG_MAPPING_FILE
    provider = _required(row, "provider", file, line).lower()
    if provider != "*" and not SLUG.match(provider):
        raise SeedError(file, line, "provider", f"{provider!r} is not a provider slug (e.g. openai) or '*'")
    dimension = _required(row, "dimension", file, line)
    if dimension not in DIMENSION_RANK:
        raise SeedError(file, line, "dimension", f"{dimension!r} is not one of {', '.join(DIMENSION_RANK)}")
    value = _required(row, "value", file, line)
    if (dimension == "*") != (value == "*"):
        raise SeedError(file, line, "value", "use value '*' exactly when dimension is '*'")
    valid_from, valid_to = _date(row, "valid_from", line), _date(row, "valid_to", line)
    if valid_from and valid_to and valid_to <= valid_from:
        raise SeedError(file, line, "valid_to", f"{valid_to} is not after valid_from {valid_from}")
    return MappingRule(
        line=line,
        provider=provider,
        dimension=dimension,
        value=value,
        team=_required(row, "team", file, line),
        cost_centre=_optional(row, "cost_centre"),
        product=_optional(row, "product"),
        valid_from=valid_from,
        valid_to=valid_to,
    )


def _reject_overlaps(rules: list[MappingRule]) -> None:
    by_target: dict[tuple[str, str, str], list[MappingRule]] = {}
    for rule in rules:
        by_target.setdefault((rule.provider, rule.dimension, rule.value), []).append(rule)
    for (provider, dimension, value), group in by_target.items():
        group.sort(key=lambda r: r.valid_from or date.min)
        for earlier, later in itertools.pairwise(group):
            if earlier.valid_to is None or (later.valid_from or date.min) < earlier.valid_to:
                raise SeedError(
                    ORG_MAPPING_FILE,
                    later.line,
                    "valid_from",
                    f"rule for {provider}/{dimension}={value} overlaps the rule on line {earlier.line}; "
                    "end one before the other starts (valid_to is exclusive)",
                )


def _invoice(line: int, row: dict[str, str], rates: dict[tuple[str, str], Decimal]) -> ManualInvoice:
    file = MANUAL_INVOICES_FILE
    vendor = _required(row, "vendor", file, line)
    month = _required(row, "invoice_month", file, line)
    if not MONTH.match(month):
        raise SeedError(file, line, "invoice_month", f"{month!r} is not a YYYY-MM month")
    amount = _decimal(row, "amount", file, line)
    currency = (row.get("currency") or "USD").upper()
    if not CURRENCY.match(currency):
        raise SeedError(file, line, "currency", f"{currency!r} is not a 3-letter currency code")
    if currency == "USD":
        amount_usd = round_to_cent(amount)
    elif (month, currency) in rates:
        amount_usd = round_to_cent(amount * rates[(month, currency)])
    else:
        raise SeedError(
            file,
            line,
            "currency",
            f"no rate for {currency} in {month}: add '{month},{currency},<usd_per_unit>' to {FX_RATES_FILE}",
        )
    category = row.get("charge_category") or "Purchase"
    if category not in CHARGE_CATEGORIES:
        raise SeedError(file, line, "charge_category", f"{category!r} is not one of {', '.join(CHARGE_CATEGORIES)}")
    return ManualInvoice(
        line=line,
        vendor=vendor,
        provider=vendor_slug(vendor),
        service=row.get("service") or vendor,
        invoice_month=month,
        amount=amount,
        currency=currency,
        amount_usd=amount_usd,
        team=_optional(row, "team"),
        cost_centre=_optional(row, "cost_centre"),
        charge_category=category,
        notes=_optional(row, "notes"),
    )
