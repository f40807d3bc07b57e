"""manual_invoices.csv and fx_rates.csv: strict parsing, conversion to USD, vendor slugs, spreading over days."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from aispend_pipeline.errors import SeedError
from aispend_pipeline.seed_files import (
    FX_RATES_FILE,
    MANUAL_INVOICES_FILE,
    ManualInvoice,
    read_fx_rates,
    read_manual_invoices,
    vendor_slug,
)
from aispend_pipeline.sources.manual_invoices.source import invoice_days

HEADER = "vendor,service,invoice_month,amount,currency,team,cost_centre,charge_category,notes"
FX_HEADER = "month,currency,usd_per_unit"


def write_invoices(seeds: Path, *rows: str, header: str = HEADER) -> None:
    (seeds / MANUAL_INVOICES_FILE).write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def write_rates(seeds: Path, *rows: str) -> None:
    (seeds / FX_RATES_FILE).write_text("\n".join([FX_HEADER, *rows]) + "\n", encoding="utf-8")


def seed_error(seeds: Path) -> SeedError:
    with pytest.raises(SeedError) as caught:
        read_manual_invoices(seeds)
    return caught.value


def invoice(**overrides: object) -> ManualInvoice:
    fields: dict[str, object] = {
        "line": 2,
        "vendor": "Acme Voice AI",
        "provider": "acme_voice_ai",
        "service": "Voice API",
        "invoice_month": "2026-10",
        "amount": Decimal("100.00"),
        "currency": "USD",
        "amount_usd": Decimal("100.00"),
        "team": "voice",
        "cost_centre": "CC-7",
        "charge_category": "Purchase",
        "notes": None,
    }
    fields.update(overrides)
    return ManualInvoice(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------- missing files


def test_missing_files_mean_no_invoices_and_no_rates(tmp_path: Path) -> None:
    assert read_manual_invoices(tmp_path) == []
    assert read_fx_rates(tmp_path) == {}


def test_missing_seeds_directory_means_no_invoices(tmp_path: Path) -> None:
    assert read_manual_invoices(tmp_path / "does-not-exist") == []


def test_header_only_file_means_no_invoices(tmp_path: Path) -> None:
    write_invoices(tmp_path)
    assert read_manual_invoices(tmp_path) == []


# ---------------------------------------------------------------- valid invoices


def test_usd_invoice(tmp_path: Path) -> None:
    write_invoices(tmp_path, "Acme Voice AI,Voice API,2026-10,1234.5,USD,voice,CC-7,Purchase,October seats")

    [inv] = read_manual_invoices(tmp_path)

    assert inv == ManualInvoice(
        line=2,
        vendor="Acme Voice AI",
        provider="acme_voice_ai",
        service="Voice API",
        invoice_month="2026-10",
        amount=Decimal("1234.5"),
        currency="USD",
        amount_usd=Decimal("1234.50"),
        team="voice",
        cost_centre="CC-7",
        charge_category="Purchase",
        notes="October seats",
    )
    assert inv.month_start == date(2026, 10, 1)


def test_usd_amount_is_rounded_half_up_to_the_cent(tmp_path: Path) -> None:
    write_invoices(tmp_path, "Cursor,,2026-10,12.345,USD,,,,", "Cursor,,2026-11,-0.125,USD,,,Credit,")

    first, credit = read_manual_invoices(tmp_path)

    assert first.amount == Decimal("12.345")
    assert first.amount_usd == Decimal("12.35")
    assert credit.amount_usd == Decimal("-0.13")


def test_blank_optional_fields_take_their_defaults(tmp_path: Path) -> None:
    write_invoices(tmp_path, "Groq,,2026-10,50,,,,,")

    [inv] = read_manual_invoices(tmp_path)

    assert inv.currency == "USD"
    assert inv.amount_usd == Decimal("50.00")
    assert inv.charge_category == "Purchase"
    assert inv.service == "Groq"
    assert inv.provider == "groq"
    assert (inv.team, inv.cost_centre, inv.notes) == (None, None, None)


def test_fields_are_stripped_and_currency_upper_cased(tmp_path: Path) -> None:
    write_rates(tmp_path, "2026-10,EUR,1.5")
    write_invoices(tmp_path, " Cursor , Pro seats , 2026-10 , 10 , eur , ml , CC-1 , Tax , note ")

    [inv] = read_manual_invoices(tmp_path)

    assert (inv.vendor, inv.service, inv.invoice_month) == ("Cursor", "Pro seats", "2026-10")
    assert (inv.currency, inv.amount_usd) == ("EUR", Decimal("15.00"))
    assert (inv.team, inv.cost_centre, inv.charge_category, inv.notes) == ("ml", "CC-1", "Tax", "note")


def test_header_with_byte_order_mark_and_padded_names(tmp_path: Path) -> None:
    padded = ", ".join(HEADER.split(","))
    (tmp_path / MANUAL_INVOICES_FILE).write_text(f"\ufeff{padded}\nCursor,,2026-10,10,USD,,,,\n", encoding="utf-8")

    [inv] = read_manual_invoices(tmp_path)

    assert (inv.vendor, inv.amount_usd) == ("Cursor", Decimal("10.00"))


# ---------------------------------------------------------------- currency conversion


def test_read_fx_rates(tmp_path: Path) -> None:
    write_rates(tmp_path, "2026-10,EUR,1.0834", "2026-11,eur,1.1", "2026-10,GBP,1.27")

    assert read_fx_rates(tmp_path) == {
        ("2026-10", "EUR"): Decimal("1.0834"),
        ("2026-11", "EUR"): Decimal("1.1"),
        ("2026-10", "GBP"): Decimal("1.27"),
    }


def test_eur_invoice_is_converted_then_rounded_half_up_before_spreading(tmp_path: Path) -> None:
    # 10.95 EUR x 1.1 = 12.045 USD: half-up gives 12.05 (half-even would give 12.04).
    write_rates(tmp_path, "2026-09,EUR,2", "2026-10,EUR,1.1")
    write_invoices(tmp_path, "Mistral,La Plateforme,2026-10,10.95,EUR,nlp,,Usage,")

    [inv] = read_manual_invoices(tmp_path)

    assert (inv.amount, inv.currency) == (Decimal("10.95"), "EUR")
    assert inv.amount_usd == Decimal("12.05")
    rows = invoice_days(inv)
    assert sum((r["cost_usd"] for r in rows), Decimal(0)) == Decimal("12.05")
    # 1205 cents over 31 days: 38 cents a day, the 27 remaining cents on the last 27 days.
    assert [r["cost_usd"] for r in rows] == [Decimal("0.38")] * 4 + [Decimal("0.39")] * 27
    assert all(r["amount_usd"] == Decimal("12.05") and r["amount"] == Decimal("10.95") for r in rows)


def test_rate_of_another_month_is_not_used(tmp_path: Path) -> None:
    write_rates(tmp_path, "2026-09,EUR,1.1")
    write_invoices(tmp_path, "Mistral,,2026-10,10,EUR,,,,")

    error = seed_error(tmp_path)

    assert (error.file, error.line, error.field) == (MANUAL_INVOICES_FILE, 2, "currency")


def test_non_usd_invoice_without_a_rate_says_what_to_add(tmp_path: Path) -> None:
    write_invoices(tmp_path, "Cursor,,2026-10,10,USD,,,,", "Mistral,,2026-10,10,GBP,,,,")

    error = seed_error(tmp_path)

    assert (error.file, error.line, error.field) == (MANUAL_INVOICES_FILE, 3, "currency")
    message = str(error)
    assert message.startswith("manual_invoices.csv line 3 field 'currency'")
    assert "GBP" in message
    assert "add '2026-10,GBP,<usd_per_unit>' to fx_rates.csv" in message


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("2026-13,EUR,1.1", "month"),
        ("2026-10,,1.1", "currency"),
        ("2026-10,EUR,0", "usd_per_unit"),
        ("2026-10,EUR,-1.1", "usd_per_unit"),
        ("2026-10,EUR,one", "usd_per_unit"),
    ],
)
def test_bad_fx_rate_row_names_file_line_and_field(tmp_path: Path, row: str, field: str) -> None:
    write_rates(tmp_path, "2026-09,EUR,1.1", row)

    with pytest.raises(SeedError) as caught:
        read_fx_rates(tmp_path)

    assert (caught.value.file, caught.value.line, caught.value.field) == (FX_RATES_FILE, 3, field)
    assert str(caught.value).startswith(f"fx_rates.csv line 3 field '{field}'")


def test_bad_fx_rates_file_fails_invoice_reading(tmp_path: Path) -> None:
    write_rates(tmp_path, "2026-10,EUR,zero")
    write_invoices(tmp_path, "Cursor,,2026-10,10,USD,,,,")

    assert seed_error(tmp_path).file == FX_RATES_FILE


# ---------------------------------------------------------------- rows that do not parse


@pytest.mark.parametrize("month", ["2026-13", "2026/10", "2026-00", "2026-1", "26-10", "2026-10-01", "October"])
def test_bad_invoice_month(tmp_path: Path, month: str) -> None:
    write_invoices(tmp_path, "Cursor,,2026-10,10,USD,,,,", f"Cursor,,{month},10,USD,,,,")

    error = seed_error(tmp_path)

    assert (error.file, error.line, error.field) == (MANUAL_INVOICES_FILE, 3, "invoice_month")
    assert str(error).startswith("manual_invoices.csv line 3 field 'invoice_month'")
    assert month in str(error)


@pytest.mark.parametrize("amount", ["abc", "NaN", "Infinity", "1.5.0", "0.0000000000001", '"12,50"', ""])
def test_bad_amount(tmp_path: Path, amount: str) -> None:
    write_invoices(tmp_path, f"Cursor,,2026-10,{amount},USD,,,,")

    error = seed_error(tmp_path)

    assert (error.file, error.line, error.field) == (MANUAL_INVOICES_FILE, 2, "amount")
    assert str(error).startswith("manual_invoices.csv line 2 field 'amount'")


@pytest.mark.parametrize("category", ["Refund", "purchase", "USAGE", "Discount"])
def test_bad_charge_category(tmp_path: Path, category: str) -> None:
    write_invoices(tmp_path, f"Cursor,,2026-10,10,USD,,,{category},")

    error = seed_error(tmp_path)

    assert (error.file, error.line, error.field) == (MANUAL_INVOICES_FILE, 2, "charge_category")
    assert category in str(error)
    assert "Purchase" in str(error)  # the message lists the allowed values


@pytest.mark.parametrize(
    ("row", "field"), [(",,2026-10,10,USD,,,,", "vendor"), ("Cursor,,,10,USD,,,,", "invoice_month")]
)
def test_empty_required_field(tmp_path: Path, row: str, field: str) -> None:
    write_invoices(tmp_path, row)

    error = seed_error(tmp_path)

    assert (error.file, error.line, error.field) == (MANUAL_INVOICES_FILE, 2, field)
    assert "is empty" in str(error)


@pytest.mark.parametrize("currency", ["US", "EURO", "12$"])
def test_bad_currency_code(tmp_path: Path, currency: str) -> None:
    write_invoices(tmp_path, f"Cursor,,2026-10,10,{currency},,,,")

    error = seed_error(tmp_path)

    assert (error.file, error.line, error.field) == (MANUAL_INVOICES_FILE, 2, "currency")


def test_row_with_too_many_fields(tmp_path: Path) -> None:
    write_invoices(tmp_path, "Cursor,,2026-10,10,USD,,,,", "Cursor,,2026-11,10,USD,,,,note,extra")

    error = seed_error(tmp_path)

    assert (error.file, error.line, error.field) == (MANUAL_INVOICES_FILE, 3, "column 10")
    assert str(error) == (
        "manual_invoices.csv line 3 field 'column 10': is beyond the header's 9 columns (a stray comma?)"
    )


def test_row_whose_only_values_are_beyond_the_header_is_rejected(tmp_path: Path) -> None:
    write_invoices(tmp_path, "Cursor,,2026-10,10,USD,,,,", ",,,,,,,,,500")

    error = seed_error(tmp_path)

    assert (error.file, error.line) == (MANUAL_INVOICES_FILE, 3)


@pytest.mark.parametrize("missing", ["amount", "notes", "vendor"])
def test_header_missing_a_column(tmp_path: Path, missing: str) -> None:
    header = ",".join(f for f in HEADER.split(",") if f != missing)
    write_invoices(tmp_path, "Cursor,,2026-10,10,USD,,,", header=header)

    error = seed_error(tmp_path)

    assert (error.file, error.line, error.field) == (MANUAL_INVOICES_FILE, 1, missing)
    assert str(error).startswith(f"manual_invoices.csv line 1 field '{missing}'")


def test_header_missing_several_columns_names_them_all(tmp_path: Path) -> None:
    write_invoices(tmp_path, header="vendor,service,invoice_month,amount,currency,team")

    error = seed_error(tmp_path)

    assert (error.line, error.field) == (1, "cost_centre")
    assert "cost_centre, charge_category, notes" in str(error)


# ---------------------------------------------------------------- blank lines


def test_blank_lines_are_skipped_but_still_counted(tmp_path: Path) -> None:
    write_invoices(
        tmp_path,
        "",
        "Cursor,,2026-10,10,USD,,,,",
        "",
        ",,,,,,,,",
        "Groq,,2026-10,20,USD,,,,",
        "",
        "Groq,,2026-13,20,USD,,,,",
    )

    error = seed_error(tmp_path)
    assert (error.line, error.field) == (8, "invoice_month")

    write_invoices(tmp_path, "", "Cursor,,2026-10,10,USD,,,,", "", ",,,,,,,,", "Groq,,2026-10,20,USD,,,,", "")
    assert [(inv.line, inv.provider) for inv in read_manual_invoices(tmp_path)] == [(3, "cursor"), (6, "groq")]


def test_crlf_line_endings_count_lines_the_same(tmp_path: Path) -> None:
    text = "\r\n".join([HEADER, "Cursor,,2026-10,10,USD,,,,", "", "Cursor,,2026/10,10,USD,,,,"]) + "\r\n"
    (tmp_path / MANUAL_INVOICES_FILE).write_bytes(text.encode())

    assert seed_error(tmp_path).line == 4


# ---------------------------------------------------------------- vendor slugs


@pytest.mark.parametrize(
    ("vendor", "slug"),
    [
        ("Acme Voice AI", "acme_voice_ai"),
        ("Mistral", "mistral"),
        ("Together AI", "together"),
        ("together ai", "together"),
        ("Together-AI", "together"),
        ("Together", "together"),
        ("fal.ai", "fal"),
        ("FAL.AI", "fal"),
        ("Fal AI", "fal"),
        ("fal", "fal"),
        ("Microsoft 365 Copilot", "m365_copilot"),
        ("microsoft 365 copilot", "m365_copilot"),
        ("Microsoft-365-Copilot", "m365_copilot"),
        ("M365 Copilot", "m365_copilot"),
        ("JetBrains AI", "jetbrains"),
        ("Jetbrains  ai", "jetbrains"),
        ("JetBrains", "jetbrains"),
        ("OpenRouter", "openrouter"),
        ("Open Router", "openrouter"),
        ("openrouter", "openrouter"),
        ("Cursor", "cursor"),
        ("CURSOR", "cursor"),
        ("  cursor  ", "cursor"),
        ("Cursor.", "cursor"),
        ("Windsurf", "windsurf"),
        ("Replicate", "replicate"),
        ("Groq", "groq"),
        ("Fireworks AI", "fireworks"),
        ("fireworks.ai", "fireworks"),
    ],
)
def test_vendor_slug(vendor: str, slug: str) -> None:
    assert vendor_slug(vendor) == slug


def test_unknown_vendor_slug_is_lower_case_with_underscores() -> None:
    assert vendor_slug("  Acme Voice AI ") == "acme_voice_ai"
    assert vendor_slug("ElevenLabs") == "elevenlabs"
    assert vendor_slug("Cursor Enterprise") == "cursor_enterprise"


def test_invoice_provider_is_the_vendor_slug(tmp_path: Path) -> None:
    write_invoices(
        tmp_path, "Together AI,,2026-10,1,USD,,,,", "fal.ai,,2026-10,1,USD,,,,", "Acme Voice AI,,2026-10,1,,,,,"
    )

    invoices = read_manual_invoices(tmp_path)

    assert [(i.vendor, i.provider) for i in invoices] == [
        ("Together AI", "together"),
        ("fal.ai", "fal"),
        ("Acme Voice AI", "acme_voice_ai"),
    ]


# ---------------------------------------------------------------- invoice_days


def test_invoice_spread_over_leap_february() -> None:
    inv = invoice(invoice_month="2028-02", amount=Decimal("100"), amount_usd=Decimal("100.00"), charge_category="Tax")

    rows = invoice_days(inv)

    assert [r["usage_date"] for r in rows] == [date(2028, 2, 1) + timedelta(days=i) for i in range(29)]
    assert sum((r["cost_usd"] for r in rows), Decimal(0)) == Decimal("100.00")
    # 10000 cents over 29 days: 344 a day, 24 cents left over for the last 24 days.
    assert [r["cost_usd"] for r in rows] == [Decimal("3.44")] * 5 + [Decimal("3.45")] * 24
    for row in rows:
        assert row["provider"] == "acme_voice_ai"
        assert row["vendor"] == "Acme Voice AI"
        assert row["service"] == "Voice API"
        assert row["team"] == "voice"
        assert row["cost_centre"] == "CC-7"
        assert row["charge_category"] == "Tax"
        assert row["invoice_month"] == "2028-02"
        assert row["invoice_line"] == 2
        assert row["amount_usd"] == Decimal("100.00")


def test_invoice_spread_over_a_31_day_month_from_the_csv(tmp_path: Path) -> None:
    write_invoices(tmp_path, "JetBrains AI,AI Pro,2026-12,-1234.56,USD,ide,CC-3,Credit,refund")
    [inv] = read_manual_invoices(tmp_path)

    rows = invoice_days(inv)

    assert len(rows) == 31
    assert rows[0]["usage_date"] == date(2026, 12, 1)
    assert rows[-1]["usage_date"] == date(2026, 12, 31)
    assert len({r["usage_date"] for r in rows}) == 31
    assert sum((r["cost_usd"] for r in rows), Decimal(0)) == Decimal("-1234.56")
    assert max(r["cost_usd"] for r in rows) - min(r["cost_usd"] for r in rows) <= Decimal("0.01")
    assert {(r["provider"], r["team"], r["charge_category"], r["notes"]) for r in rows} == {
        ("jetbrains", "ide", "Credit", "refund")
    }


@pytest.mark.parametrize(("month", "days"), [("2026-02", 28), ("2028-02", 29), ("2026-04", 30), ("2026-01", 31)])
def test_invoice_days_cover_exactly_the_month(month: str, days: int) -> None:
    inv = invoice(invoice_month=month, amount_usd=Decimal("0.07"))

    rows = invoice_days(inv)

    assert len(rows) == days
    assert all(r["usage_date"].strftime("%Y-%m") == month for r in rows)  # type: ignore[attr-defined]
    assert sum((r["cost_usd"] for r in rows), Decimal(0)) == Decimal("0.07")
    assert [r["cost_usd"] for r in rows][-7:] == [Decimal("0.01")] * 7
