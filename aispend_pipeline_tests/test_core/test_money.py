"""Exact money: parsing provider amounts, cents, half-up rounding, and spreading a total over days."""

from __future__ import annotations

import calendar
import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from aispend_pipeline.core.money import (
    CENT,
    MONEY_SCALE,
    MONEY_TEXT_PATTERN,
    SCALE_QUANTUM,
    MoneyValueError,
    cents_adding_up,
    cents_to_usd,
    exact_decimal,
    fit_money,
    money_text,
    money_texts,
    parse_money,
    round_to_cent,
    spread_over_days,
)


def month_days(year: int, month: int) -> list[date]:
    first = date(year, month, 1)
    return [first + timedelta(days=i) for i in range(calendar.monthrange(year, month)[1])]


# ---------------------------------------------------------------- parse_money


def test_json_numbers_parsed_as_decimal_stay_exact() -> None:
    payload = json.loads('{"cost": 0.1, "long": 12.345678901234, "neg": -7.50, "whole": 3}', parse_float=Decimal)

    assert parse_money(payload["cost"]) == Decimal("0.1")
    assert str(parse_money(payload["cost"])) == "0.1"
    assert parse_money(payload["long"]) == Decimal("12.345678901234")
    assert parse_money(payload["neg"]) == Decimal("-7.50")
    assert parse_money(payload["whole"]) == Decimal(3)
    assert sum(parse_money(payload["cost"]) for _ in range(10)) == Decimal(1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, Decimal(0)),
        (42, Decimal(42)),
        (-17, Decimal(-17)),
        (10**20, Decimal("100000000000000000000")),
    ],
)
def test_ints_become_exact_decimals(value: int, expected: Decimal) -> None:
    result = parse_money(value)
    assert isinstance(result, Decimal)
    assert result == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.50", Decimal("12.50")),
        ("  12.50 ", Decimal("12.50")),
        ("\t-3.25\n", Decimal("-3.25")),
        ("0", Decimal(0)),
        ("-0.000000000001", Decimal("-0.000000000001")),
        ("123456789.123456789012", Decimal("123456789.123456789012")),
        ("1e3", Decimal(1000)),
    ],
)
def test_decimal_strings_with_surrounding_whitespace(text: str, expected: Decimal) -> None:
    assert parse_money(text) == expected


def test_decimal_input_is_returned_with_its_value() -> None:
    assert parse_money(Decimal("19.99")) == Decimal("19.99")
    assert str(parse_money(Decimal("19.990"))) == "19.990"


@pytest.mark.parametrize(
    "value",
    [
        0.1,
        1.0,
        float("nan"),
        True,
        False,
        None,
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-Infinity",
        "inf",
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        "abc",
        "",
        "   ",
        "1,5",
        "12.5 USD",
        "$12.50",
        {"amount": "1"},
    ],
)
def test_rejects_non_decimal_values(value: object) -> None:
    with pytest.raises(ValueError, match="amount"):
        parse_money(value)


def test_float_error_says_what_was_received() -> None:
    with pytest.raises(ValueError, match=r"expected a decimal amount, got 0\.1"):
        parse_money(0.1)


@pytest.mark.parametrize(
    "text", ["0.1234567890123", "1.0000000000001", "-5.9999999999999", "1E-13", "0.00000000000001"]
)
def test_rejects_more_fractional_digits_than_the_money_scale(text: str) -> None:
    with pytest.raises(ValueError, match=f"more than {MONEY_SCALE} decimal places"):
        parse_money(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.123456789012", Decimal("0.123456789012")),
        ("0.1234567890120", Decimal("0.123456789012")),
        ("1.5000000000000000", Decimal("1.5")),
        ("100.00000000000000", Decimal(100)),
        ("-2.0000000000000", Decimal(-2)),
        ("0.0000000000000", Decimal(0)),
    ],
)
def test_accepts_extra_fractional_digits_when_they_are_trailing_zeros(text: str, expected: Decimal) -> None:
    result = parse_money(text)
    assert result == expected
    assert -result.as_tuple().exponent <= MONEY_SCALE  # type: ignore[operator]
    # What is stored is plain decimal text that the DECIMAL column accepts.
    assert re.fullmatch(MONEY_TEXT_PATTERN, money_text(result))
    assert Decimal(money_text(result)) == expected


def test_rejects_many_fractional_digits_even_when_normalising_would_round_them_away() -> None:
    with pytest.raises(ValueError):
        parse_money("1.00000000000000000000000000001")


def test_money_text_has_no_exponent() -> None:
    assert money_text(Decimal("1E+2")) == "100"
    assert money_text(Decimal("1E-12")) == "0.000000000001"
    assert money_text(Decimal("-12.500")) == "-12.500"


# ---------------------------------------------------------------- cents_to_usd


@pytest.mark.parametrize(
    ("cents", "usd"),
    [
        ("123.78912", "1.2378912"),
        ("1", "0.01"),
        ("0.5", "0.005"),
        ("-250", "-2.50"),
        ("0", "0"),
        ("100000000", "1000000"),
        ("0.0000000001", "0.000000000001"),
    ],
)
def test_cents_to_usd_is_exact(cents: str, usd: str) -> None:
    result = cents_to_usd(Decimal(cents))
    assert result == Decimal(usd)
    assert result * 100 == Decimal(cents)


def test_cents_to_usd_does_not_round() -> None:
    result = cents_to_usd(Decimal("123.78912"))
    assert result.as_tuple() == Decimal("1.2378912").as_tuple()


# ---------------------------------------------------------------- round_to_cent


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("0.005", "0.01"),
        ("0.015", "0.02"),
        ("0.025", "0.03"),
        ("2.675", "2.68"),
        ("12.045", "12.05"),
        ("-0.005", "-0.01"),
        ("-12.045", "-12.05"),
        ("1.004999999999", "1.00"),
        ("1.005000000000", "1.01"),
        ("7", "7.00"),
        ("0", "0.00"),
    ],
)
def test_round_to_cent_is_half_up(amount: str, expected: str) -> None:
    result = round_to_cent(Decimal(amount))
    assert result == Decimal(expected)
    assert result.as_tuple().exponent == -2
    assert str(result) == expected


# ---------------------------------------------------------------- spread_over_days


def deterministic_totals(count: int) -> list[Decimal]:
    """Totals from -1000.000 to +1000.000 in thousandths (a linear congruential walk), plus edge cases."""
    totals = [Decimal(((i * 7919 + 13) % 2_000_001) - 1_000_000).scaleb(-3) for i in range(count)]
    edge = ["0", "0.00", "0.01", "-0.01", "0.28", "0.29", "0.30", "0.31", "-0.30", "0.004", "0.005", "-0.005"]
    return totals + [Decimal(e) for e in edge] + [Decimal(n).scaleb(-2) for n in range(-40, 41)]


MONTHS = [(2026, 2), (2028, 2), (2026, 4), (2026, 10)]  # 28, 29, 30 and 31 days


def test_month_fixture_covers_every_month_length() -> None:
    assert sorted(len(month_days(y, m)) for y, m in MONTHS) == [28, 29, 30, 31]


def test_shares_sum_exactly_to_the_cent_rounded_total_for_many_totals() -> None:
    totals = deterministic_totals(2000)
    assert any(t < 0 for t in totals)
    assert any(t == 0 for t in totals)
    assert any(0 < abs(t) < Decimal("0.28") for t in totals)  # less than a cent per day
    assert len({t for t in totals}) > 1900

    for index, total in enumerate(totals):
        days = month_days(*MONTHS[index % len(MONTHS)])
        shares = spread_over_days(total, days)
        rounded = round_to_cent(total)

        assert len(shares) == len(days), total
        assert sum(shares, Decimal(0)) == rounded, total
        assert all(share == share.quantize(CENT) for share in shares), total
        assert max(shares) - min(shares) <= CENT, total


def test_remainder_cents_land_on_the_last_days_for_positive_totals() -> None:
    for index, total in enumerate(t for t in deterministic_totals(2000) if t > 0):
        days = month_days(*MONTHS[index % len(MONTHS)])
        cents = int(round_to_cent(total).scaleb(2))
        base, remainder = cents // len(days), cents % len(days)
        expected = [Decimal(base).scaleb(-2)] * (len(days) - remainder) + [Decimal(base + 1).scaleb(-2)] * remainder

        assert spread_over_days(total, days) == expected, total


def test_spread_of_one_dollar_over_a_31_day_month() -> None:
    shares = spread_over_days(Decimal("1.00"), month_days(2026, 10))
    # 100 cents / 31 days = 3 cents, 7 left over: the last 7 days take 4 cents.
    assert shares == [Decimal("0.03")] * 24 + [Decimal("0.04")] * 7


def test_amount_smaller_than_a_cent_per_day_goes_to_the_last_days_only() -> None:
    shares = spread_over_days(Decimal("0.05"), month_days(2028, 2))
    assert shares == [Decimal("0.00")] * 24 + [Decimal("0.01")] * 5


def test_unrounded_total_is_rounded_half_up_before_spreading() -> None:
    shares = spread_over_days(Decimal("0.285"), month_days(2026, 2))  # 28 days, 0.285 -> 0.29
    assert sum(shares, Decimal(0)) == Decimal("0.29")
    assert shares[-1] == Decimal("0.02")
    assert shares[0] == Decimal("0.01")


def test_zero_total_gives_zero_every_day() -> None:
    assert spread_over_days(Decimal(0), month_days(2026, 4)) == [Decimal("0.00")] * 30


def test_negative_total_spreads_exactly() -> None:
    shares = spread_over_days(Decimal("-1.00"), month_days(2026, 10))
    assert sum(shares, Decimal(0)) == Decimal("-1.00")
    assert {abs(s) for s in shares} == {Decimal("0.03"), Decimal("0.04")}
    assert sum(1 for s in shares if s == Decimal("-0.04")) == 7


def test_single_day_takes_the_whole_rounded_total() -> None:
    assert spread_over_days(Decimal("12.345"), [date(2026, 10, 1)]) == [Decimal("12.35")]


def test_a_seat_price_spread_at_the_column_scale_keeps_12_decimals_and_sums_exactly() -> None:
    shares = spread_over_days(Decimal(19), month_days(2026, 4), SCALE_QUANTUM)  # 19 / 30 days
    # 19e12 units / 30 = 633333333333 units a day, 10 left over: the last 10 days take one unit more.
    assert shares == [Decimal("0.633333333333")] * 20 + [Decimal("0.633333333334")] * 10
    assert sum(shares, Decimal(0)) == Decimal(19)


@pytest.mark.parametrize(
    "amounts",
    [
        ["0.005", "0.005", "0.005"],  # each rounds up alone: 0.03 printed against a total of 0.02
        ["1.234", "2.346", "-0.555"],
        ["7807.014999", "2751.635", "919.985", "0.000000000001"],
        ["0.004"] * 9,
        [],
    ],
)
def test_rounded_parts_add_up_to_the_rounded_total(amounts: list[str]) -> None:
    exact = [Decimal(a) for a in amounts]
    parts = cents_adding_up(exact)
    assert sum(parts, Decimal(0)) == round_to_cent(sum(exact, Decimal(0)))
    assert all(
        part == part.quantize(CENT) and abs(part - amount) < CENT for part, amount in zip(parts, exact, strict=True)
    )


def test_the_left_over_cent_goes_to_the_part_that_lost_most() -> None:
    assert cents_adding_up([Decimal("1.004"), Decimal("2.008")]) == [Decimal("1.00"), Decimal("2.01")]


# JSON number text (as parse_float=str keeps it), JSON strings, Decimals and ints, with and without the
# fast path: exponents, spaces, signs, zeros, more than 12 decimals (rounded half-even), 26 integer digits.
COLUMN = [
    "1.5",
    "0.30000000000000004",
    "12345678901234.123456789012",
    "-0.000000000001",
    "0",
    "-0",
    "007.50",
    " 2.25 ",
    "1e-7",
    "2.5E+3",
    Decimal("0.1234567890125"),
    Decimal("3.000"),
    5,
    -12,
    "0.0000000000005",
    "0.0000000000015",
    "9" * 26,
    "1." + "9" * 12,
]


@pytest.mark.parametrize("shift", [0, -2])
def test_money_texts_means_what_fit_money_means_value_by_value(shift: int) -> None:
    texts, rounding = money_texts(COLUMN, shift=shift)
    for index, value in enumerate(COLUMN):
        amount, rounded = fit_money(exact_decimal(value).scaleb(shift) if shift else value)
        assert Decimal(texts[index]) == amount, value
        assert re.fullmatch(MONEY_TEXT_PATTERN, texts[index]), texts[index]
        assert rounding.get(index, Decimal(0)) == rounded, value
    assert sum(Decimal(t) for t in texts) + sum(rounding.values()) == sum(
        exact_decimal(v).scaleb(shift) for v in COLUMN
    )


def test_money_texts_keeps_none_only_when_optional_and_names_the_first_bad_position() -> None:
    assert money_texts(["1", None], optional=True)[0] == ["1", None]
    for bad, position in ((["1", None], 1), (["1", "2", "abc", "x"], 2), ([True], 0), (["1" * 27], 0), (["NaN"], 0)):
        with pytest.raises(MoneyValueError) as caught:
            money_texts(bad)
        assert caught.value.index == position


def test_a_column_of_short_decimals_is_taken_whole_and_odd_ones_still_go_value_by_value() -> None:
    plain = [Decimal("1.25"), Decimal("-0.000001"), Decimal("12345.678901")]
    assert money_texts(plain) == (["1.25", "-0.000001", "12345.678901"], {})
    assert money_texts([Decimal("1.25"), None], optional=True) == (["1.25", None], {})
    assert money_texts([Decimal("123.4567")], shift=-2) == (["1.234567"], {})

    # An exponent, 13 decimals or a long float artefact anywhere: the whole column is fitted value by value.
    odd = [Decimal("1.25"), Decimal("1E-7"), Decimal("0.30000000000000004")]
    texts, rounding = money_texts(odd)
    assert texts == ["1.25", "0.0000001", "0.300000000000"]
    assert rounding == {2: Decimal("-4E-17")}
