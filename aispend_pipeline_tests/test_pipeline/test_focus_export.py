"""`aispend export focus` through the real pipeline: FOCUS rules the FinOps validator misses, CLI round trips.

focus-validator 1.0.0 (benchmarks/focus_validate.py) checks types and nullability of the FOCUS 1.0 columns;
these tests check what it does not: the 1.0 names of ProviderName/PublisherName/InvoiceIssuerName, the
ChargeCategory values, the x_ prefix, and the cross-column rules of FOCUS 1.2.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from aispend_pipeline.cli import main
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

# Across a month end, so two billing periods and both months' invoices are in the file.
FIRST, LAST = date(2026, 9, 28), date(2026, 10, 3)
EXTRA_INVOICES = """
Acme Voice AI,Voice agent minutes,2026-10,1234.50,USD,support,CC-220,Usage,usage invoice
Cursor,Sales tax,2026-09,198.40,USD,platform,CC-100,Tax,tax on the seat invoice
Cursor,Service credit,2026-10,-50.00,USD,platform,CC-100,Credit,outage credit
"""


def names(text: str) -> set[str]:
    return set(text.split())


# The specification's own column lists (FOCUS_Spec, specification/columns at tags v1.0, v1.1, v1.2).
FOCUS_1_0 = names(
    """
    AvailabilityZone BilledCost BillingAccountId BillingAccountName BillingCurrency BillingPeriodEnd
    BillingPeriodStart ChargeCategory ChargeClass ChargeDescription ChargeFrequency ChargePeriodEnd
    ChargePeriodStart CommitmentDiscountCategory CommitmentDiscountId CommitmentDiscountName
    CommitmentDiscountStatus CommitmentDiscountType ConsumedQuantity ConsumedUnit ContractedCost
    ContractedUnitPrice EffectiveCost InvoiceIssuerName ListCost ListUnitPrice PricingCategory
    PricingQuantity PricingUnit ProviderName PublisherName RegionId RegionName ResourceId ResourceName
    ResourceType ServiceCategory ServiceName SkuId SkuPriceId SubAccountId SubAccountName Tags
    """
)
FOCUS_1_1_AND_1_2 = names(
    """
    CapacityReservationId CapacityReservationStatus CommitmentDiscountQuantity CommitmentDiscountUnit
    ServiceSubcategory SkuMeter SkuPriceDetails BillingAccountType SubAccountType InvoiceId
    PricingCurrency PricingCurrencyContractedUnitPrice PricingCurrencyEffectiveCost PricingCurrencyListUnitPrice
    """
)
CHARGE_CATEGORIES = {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}  # FOCUS 1.0; 'Refund' is pre-1.0
DECIMALS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ConsumedQuantity", "PricingQuantity")
PERIODS = ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd")
AI_SUBCATEGORIES = {
    "AI Platforms",
    "Bots",
    "Generative AI",
    "Machine Learning",
    "Natural Language Processing",
    "Other (AI and Machine Learning)",
}
AI_COLUMNS = {"x_Model", "x_TokenDirection", "x_TokenCacheAction", "x_Team", "x_CostCentre", "x_Product"}
ALLOCATION_COLUMNS = {"x_AllocationMethod", "x_AllocationShare", "x_CostSource", "x_DataLag"}
CLI = (sys.executable, "-m", "aispend_pipeline.cli", "export", "focus")
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
DECIMAL_TEXT = re.compile(r"-?\d+\.\d+")


def focus_violations(columns: list[str], rows: list[dict[str, str]]) -> list[str]:
    """Every FOCUS rule a CSV export breaks (column set, values, FOCUS 1.2 cross-column rules)."""
    problems = [f"missing FOCUS 1.0 column {c}" for c in sorted(FOCUS_1_0 - set(columns))]
    problems += [
        f"custom column {c} lacks the x_ prefix"
        for c in columns
        if c not in FOCUS_1_0 | FOCUS_1_1_AND_1_2 and not c.startswith("x_")
    ]
    for number, row in enumerate(rows, start=2):

        def bad(rule: str, row=row, number=number) -> None:
            problems.append(f"line {number} ({row.get('x_Provider')}, {row.get('ChargeCategory')}): {rule}")

        category, empty = row["ChargeCategory"], {c for c, v in row.items() if v == ""}
        for name in ("ProviderName", "PublisherName", "InvoiceIssuerName", "BillingAccountId", "ServiceName"):
            if not row[name].strip():
                bad(f"{name} is empty")
        if category not in CHARGE_CATEGORIES:
            bad(f"ChargeCategory {category!r} is not a FOCUS 1.0 value")
        if row["ChargeClass"] not in ("", "Correction"):
            bad("ChargeClass is neither null nor Correction")
        if row["ChargeFrequency"] not in ("One-Time", "Recurring", "Usage-Based"):
            bad(f"ChargeFrequency {row['ChargeFrequency']!r}")
        if category == "Purchase" and row["ChargeFrequency"] == "Usage-Based":
            bad("a Purchase is Usage-Based")
        if category != "Usage" and "ConsumedQuantity" not in empty:
            bad("ConsumedQuantity on a non-Usage charge")
        if ("ConsumedQuantity" in empty) != ("ConsumedUnit" in empty):
            bad("ConsumedUnit null and ConsumedQuantity not (or the reverse)")
        if ("PricingQuantity" in empty) != ("PricingUnit" in empty):
            bad("PricingUnit null and PricingQuantity not (or the reverse)")
        if category == "Tax":
            for name in ("PricingQuantity", "ListUnitPrice", "ContractedUnitPrice", "PricingCategory", "SkuId"):
                if name not in empty:
                    bad(f"{name} on a Tax charge")
        if category in ("Usage", "Purchase") and row["PricingCategory"] not in ("Standard", "Dynamic", "Committed"):
            bad(f"PricingCategory {row['PricingCategory']!r} on a {category} charge")
        if row["CommitmentDiscountId"] == "":
            for name in ("CommitmentDiscountStatus", "CommitmentDiscountCategory", "CommitmentDiscountName"):
                if name not in empty:
                    bad(f"{name} without a CommitmentDiscountId")
            if Decimal(row["EffectiveCost"]) != Decimal(row["BilledCost"]):
                bad("EffectiveCost differs from BilledCost with no commitment discount")
        for cost, price in (("ListCost", "ListUnitPrice"), ("ContractedCost", "ContractedUnitPrice")):
            if row[price] == "" and Decimal(row[cost]) != Decimal(row["BilledCost"]):
                bad(f"{cost} differs from BilledCost with no {price}")
        for name in DECIMALS:
            if name not in empty and not DECIMAL_TEXT.fullmatch(row[name]):
                bad(f"{name} {row[name]!r} is not decimal text with a point")
        if not all(ISO_UTC.fullmatch(row[name]) for name in PERIODS):
            bad("a period bound is not an ISO 8601 UTC timestamp")
            continue
        start, end, billing_start, billing_end = (row[name] for name in PERIODS)  # same format: order as text
        if not start < end:
            bad("ChargePeriodEnd is not after ChargePeriodStart")
        if not billing_start < billing_end:
            bad("BillingPeriodEnd is not after BillingPeriodStart")
        if row["ChargeClass"] == "" and not billing_start <= start < end <= billing_end:
            bad("the charge period lies outside its billing period (only a Correction may)")
        for name, parent in (
            ("RegionName", "RegionId"),
            ("SubAccountName", "SubAccountId"),
            ("SubAccountType", "SubAccountId"),
            ("BillingAccountType", "BillingAccountId"),
            ("ResourceName", "ResourceId"),
            ("ResourceType", "ResourceId"),
        ):
            if (name in empty) != (parent in empty):
                bad(f"{name} null and {parent} not (or the reverse)")
        if "SkuId" in empty and "SkuMeter" not in empty:
            bad("SkuMeter without a SkuId")
        if row["ServiceCategory"] != "AI and Machine Learning" or row["ServiceSubcategory"] not in AI_SUBCATEGORIES:
            bad("not in AI and Machine Learning (or a subcategory of another category)")
        if row["BillingCurrency"] != "USD":
            bad("BillingCurrency is not USD")
        if not isinstance(json.loads(row["Tags"] or "{}"), dict):
            bad("Tags is not a JSON object")
    return problems


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def run_pipeline(pipeline) -> None:
    with (pipeline.seeds_dir / "manual_invoices.csv").open("a") as invoices:
        invoices.write(EXTRA_INVOICES.lstrip())
    ok, reason = pipeline.run(FIRST, LAST)
    assert ok, reason


def lines_total(pipeline) -> tuple[int, Decimal]:
    rows, total = pipeline.db.rows(
        "SELECT count(*), sum(cost_usd) FROM main.cost_line_items WHERE usage_date BETWEEN $first AND $last",
        {"first": FIRST, "last": LAST},
    )[0]
    return rows, total


def test_the_csv_export_keeps_every_focus_rule_the_validator_does_not_check(pipeline, tmp_path, capsys):
    run_pipeline(pipeline)
    output = tmp_path / "focus.csv"
    assert main(["export", "focus", "--start", str(FIRST), "--end", str(LAST), "--output", str(output)]) == 0
    columns, rows = read_csv(output)

    assert focus_violations(columns, rows) == []
    assert set(columns) >= AI_COLUMNS | ALLOCATION_COLUMNS | names("BillingAccountType SubAccountType SkuMeter")
    assert {r["ChargeCategory"] for r in rows} >= {"Usage", "Purchase", "Tax", "Credit"}, "every rule is exercised"
    shown = {(r["x_Provider"], r["ProviderName"], r["PublisherName"], r["InvoiceIssuerName"]) for r in rows}
    assert {p: n for p, n, *_ in shown}.items() >= {
        "openai": "OpenAI",
        "anthropic": "Anthropic",
        "gcp": "Google Cloud",
        "cursor": "Cursor",
        "jetbrains": "JetBrains",
        "acme_voice_ai": "Acme Voice Ai",  # a vendor with no display name: its slug in title case
    }.items()
    assert all(len(set(n)) == 2 for n in shown), "publisher and issuer are the provider for every source here"
    frequencies = {(r["x_CostSource"], r["ChargeCategory"], r["ChargeFrequency"]) for r in rows}
    assert ("invoice", "Purchase", "Recurring") in frequencies and ("billed", "Usage", "Usage-Based") in frequencies
    assert {r["x_TokenCacheAction"] for r in rows if r["x_Provider"] == "anthropic"} >= {"read", "write"}
    tagged = [r for r in rows if r["x_TeamTag"]]
    assert tagged and all(json.loads(r["Tags"]) == {"team": r["x_TeamTag"]} for r in tagged)
    usage_with_quantity = {
        line_id
        for (line_id,) in pipeline.db.rows(
            "SELECT CAST(cost_line_id AS VARCHAR) FROM main.cost_line_items "
            "WHERE charge_category = 'Usage' AND quantity IS NOT NULL "
            "AND usage_date BETWEEN $first AND $last",
            {"first": FIRST, "last": LAST},
        )
    }
    assert usage_with_quantity, "the sources report quantities"
    assert {r["x_CostLineId"] for r in rows if r["ConsumedQuantity"]} == usage_with_quantity
    sub_accounts = {(r["x_Provider"], r["SubAccountType"]) for r in rows if r["SubAccountId"]}
    assert {("openai", "Project"), ("anthropic", "Workspace"), ("gcp", "Project")} <= sub_accounts


def test_the_checker_itself_catches_broken_rows():
    """focus_violations must fail on what it is there to catch, or the test above proves nothing."""
    good = {c: "" for c in FOCUS_1_0 | {"ServiceSubcategory", "SkuMeter", "SubAccountType", "x_Provider"}}
    good.update(
        ChargeCategory="Credit",
        ChargeFrequency="One-Time",
        ProviderName="OpenAI",
        PublisherName="OpenAI",
        InvoiceIssuerName="OpenAI",
        BillingAccountId="openai",
        BillingAccountType="Organization",
        ServiceName="OpenAI API",
        BilledCost="-1.5",
        EffectiveCost="-1.5",
        ListCost="-1.5",
        ContractedCost="-1.5",
        ChargePeriodStart="2026-10-01T00:00:00Z",
        ChargePeriodEnd="2026-10-02T00:00:00Z",
        BillingPeriodStart="2026-10-01T00:00:00Z",
        BillingPeriodEnd="2026-11-01T00:00:00Z",
        ServiceCategory="AI and Machine Learning",
        ServiceSubcategory="Generative AI",
        BillingCurrency="USD",
        Tags="{}",
    )
    columns = sorted(good)
    assert focus_violations(columns, [good]) == []
    broken = {
        "ChargeCategory": ("Refund", "not a FOCUS 1.0 value"),
        "ConsumedQuantity": ("3.0", "ConsumedQuantity on a non-Usage charge"),
        "ChargePeriodEnd": ("2026-10-01T00:00:00Z", "not after ChargePeriodStart"),
        "ChargePeriodStart": ("2026-09-30T00:00:00Z", "outside its billing period"),
        "EffectiveCost": ("0.0", "EffectiveCost differs from BilledCost"),
        "ProviderName": (" ", "ProviderName is empty"),
        "ChargeClass": ("Restatement", "neither null nor Correction"),
        "Tags": ('["team"]', "not a JSON object"),
    }
    for column, (value, message) in broken.items():
        problems = focus_violations(columns, [{**good, column: value}])
        assert any(message in p for p in problems), (column, problems)
    assert any("lacks the x_ prefix" in p for p in focus_violations([*columns, "Team"], [good]))
    assert any("missing FOCUS 1.0 column" in p for p in focus_violations(columns[1:], [good]))


def test_csv_and_parquet_round_trip_to_the_cent_without_the_write_lock(pipeline, tmp_path):
    run_pipeline(pipeline)
    rows_expected, total_expected = lines_total(pipeline)
    database = pipeline.db.path
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    analyst = duckdb.connect(str(database), read_only=True)  # another reader holds the file meanwhile
    try:
        for name in ("focus.csv", "focus.parquet"):
            done = subprocess.run(
                [*CLI, "--start", str(FIRST), "--end", str(LAST), "--output", str(tmp_path / name)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            assert done.stdout.count("\n") == 1 and f"{rows_expected} FOCUS rows" in done.stdout
            assert f"BilledCost total {total_expected:.2f} USD" in done.stdout
    finally:
        analyst.close()
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before, "the export never writes the file"

    reader = duckdb.connect()
    csv_rows, csv_total = reader.execute(
        "SELECT count(*), sum(CAST(BilledCost AS DECIMAL(38, 12))) FROM read_csv($p, all_varchar = true)",
        {"p": str(tmp_path / "focus.csv")},
    ).fetchone()
    parquet = reader.execute(
        "SELECT count(*), sum(BilledCost), typeof(any_value(BilledCost)), typeof(any_value(ChargePeriodStart)) "
        "FROM read_parquet($p)",
        {"p": str(tmp_path / "focus.parquet")},
    ).fetchone()
    assert (csv_rows, csv_total) == (rows_expected, total_expected), "exact decimals, not rounded"
    assert parquet == (rows_expected, total_expected, "DECIMAL(38,12)", "TIMESTAMP WITH TIME ZONE")


@pytest.fixture
def empty_database(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "data" / "aispend.duckdb"
    DuckDBWarehouse(path).ensure_tables([COST_LINE_ITEMS])
    monkeypatch.setenv("AISPEND_DUCKDB_PATH", str(path))
    return path


def export(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["export", "focus", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_empty_range_writes_a_header_only_file(empty_database, tmp_path, capsys):
    code, out, _ = export(capsys, "--start", "2026-10-01", "--end", "2026-10-01", "--output", str(tmp_path / "f.csv"))
    assert code == 0 and "wrote 0 FOCUS rows" in out and "BilledCost total 0.00 USD" in out
    columns, rows = read_csv(tmp_path / "f.csv")
    assert rows == [] and set(columns) >= FOCUS_1_0


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        (("--start", "2026-13-01", "--end", "2026-10-02"), 2, "--start '2026-13-01' is not a day"),
        (("--start", "2026-10-05", "--end", "2026-10-02"), 1, "--start 2026-10-05 is after --end 2026-10-02"),
        (("--start", "2026-10-01", "--end", "2026-10-02", "--output", "{tmp}/missing/f.csv"), 1, "does not exist"),
        (("--start", "2026-10-01", "--end", "2026-10-02", "--output", "{tmp}"), 1, "it is a directory"),
    ],
)
def test_a_bad_request_fails_with_one_line_and_writes_nothing(empty_database, tmp_path, capsys, args, code, reason):
    args = tuple(a.format(tmp=tmp_path) for a in args)
    if "--output" not in args:
        args = (*args, "--output", str(tmp_path / "f.csv"))
    got, out, err = export(capsys, *args)
    assert (got, out) == (code, "")
    assert err.count("\n") == 1 and reason in err
    assert not (tmp_path / "f.csv").exists()


def test_a_missing_database_is_named_with_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AISPEND_DUCKDB_PATH", str(tmp_path / "nowhere.duckdb"))
    code, _, err = export(capsys, "--start", "2026-10-01", "--end", "2026-10-02", "--output", str(tmp_path / "f.csv"))
    assert code == 1 and err.count("\n") == 1
    assert "nowhere.duckdb" in err and "aispend materialize" in err
    assert not (tmp_path / "nowhere.duckdb").exists(), "a read-only export never creates the file"
