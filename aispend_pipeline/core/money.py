"""Exact money: amounts stay `Decimal` from the provider's payload to the DuckDB `DECIMAL` column.

Floats never carry money: JSON is parsed with `parse_float=Decimal`, and frames carry amounts as
decimal text that DuckDB casts to `DECIMAL(38, 12)` on insert.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import date
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, InvalidOperation

from aispend_pipeline.errors import SourcePayloadError

MONEY_SCALE = 12
MONEY_SQL_TYPE = f"DECIMAL(38, {MONEY_SCALE})"
MONEY_INTEGER_DIGITS = 38 - MONEY_SCALE
CENT = Decimal("0.01")
# Decimal text as stored: optional sign, digits, at most MONEY_SCALE fractional digits.
MONEY_TEXT_PATTERN = rf"-?[0-9]+(\.[0-9]{{1,{MONEY_SCALE}}})?"


def exact_decimal(value: object) -> Decimal:
    """A finite Decimal from a JSON number (parsed as Decimal), an int or a decimal string, as written."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(f"expected a decimal amount, got {value!r}")
    try:
        amount = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"expected a decimal amount, got {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"expected a finite amount, got {value!r}")
    return amount


def parse_money(value: object) -> Decimal:
    """A finite Decimal from a JSON number (parsed as Decimal), an int or a decimal string.

    It must fit `DECIMAL(38, 12)` exactly: trailing zeros beyond 12 decimals are dropped, any other
    digit there is an error (never a silent rounding). Raises ValueError with a short reason;
    callers add which source, day and field.
    """
    amount = exact_decimal(value)
    sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    while exponent < -MONEY_SCALE and len(digits) > 1 and digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    if exponent < -MONEY_SCALE and any(digits):
        raise ValueError(f"amount {value!r} has more than {MONEY_SCALE} decimal places")
    if len(digits) + exponent > MONEY_INTEGER_DIGITS and any(digits):
        raise ValueError(f"amount {value!r} has more than {MONEY_INTEGER_DIGITS} integer digits")
    return Decimal((sign, digits, max(exponent, -MONEY_SCALE) if not any(digits) else exponent))


SCALE_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


def fit_money(value: object) -> tuple[Decimal, Decimal]:
    """A payload amount fitted to the column's scale: (amount, rounding applied).

    Providers send JSON numbers with float artefacts (`0.30000000000000004`): the number's text is
    parsed exactly, then rounded half-even to 12 decimals; the rounding is returned so that it can be
    reported per source and day. A run never fails for digits beyond the column's scale.
    """
    exact = exact_decimal(value)
    exponent = exact.as_tuple().exponent
    assert isinstance(exponent, int)
    fitted = exact.quantize(SCALE_QUANTUM, rounding=ROUND_HALF_EVEN) if exponent < -MONEY_SCALE else exact
    return parse_money(fitted), fitted - exact


def money_text(amount: Decimal) -> str:
    """Plain decimal text (no exponent) that DuckDB casts to DECIMAL without loss."""
    return format(amount, "f")


def trimmed_money_text(amount: Decimal) -> str:
    """Exact plain text without the trailing zeros of the DECIMAL scale (for people: 12.5, not 12.500000000000)."""
    text = money_text(amount)
    return text.rstrip("0").rstrip(".") if "." in text else text


def cents_to_usd(cents: Decimal) -> Decimal:
    """Cents to dollars, exactly (a shift of the exponent, no rounding)."""
    return cents.scaleb(-2)


def round_to_cent(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def spread_over_days(total: Decimal, days: list[date], quantum: Decimal = CENT) -> list[Decimal]:
    """Split a total evenly over days in whole quanta (cents by default), remainder quanta on the last days.

    The total is rounded to the quantum first; the shares always sum exactly to it, differ by at most one
    quantum, and a negative total (a credit note) mirrors a positive one. A seat price spread at the
    column's scale (`SCALE_QUANTUM`) keeps 12 decimals per day and still sums to the price exactly.
    """
    units = int(total.quantize(quantum, rounding=ROUND_HALF_UP) / quantum)
    sign = -1 if units < 0 else 1
    base, remainder = divmod(abs(units), len(days))
    first_with_extra = len(days) - remainder
    return [sign * (base + (1 if i >= first_with_extra else 0)) * quantum for i in range(len(days))]


def cents_adding_up(amounts: list[Decimal]) -> list[Decimal]:
    """Round each amount to the cent so that the parts add up exactly to the rounded total.

    Largest remainder: each part is its amount rounded down to the cent, and the cents left over go to
    the parts that lost the most, so a printed breakdown always sums to its printed total and no part is
    off by more than a cent.
    """
    total = round_to_cent(sum(amounts, Decimal(0)))
    floors = [amount.quantize(CENT, rounding=ROUND_FLOOR) for amount in amounts]
    spare = int((total - sum(floors, Decimal(0))) / CENT)
    order = sorted(range(len(amounts)), key=lambda i: (floors[i] - amounts[i], i))
    for i in order[:spare]:
        floors[i] += CENT
    return floors


# DuckDB divides DECIMALs in DOUBLE. These macros divide scaled HUGEINTs instead, so a ratio of money is exact
# to the column's 12 decimals (rounded half-even): `exact_ratio(n, m, d)` = n * m / d for money `n` and counts
# `m`, `d` (tokens, seats; taken to 6 decimals), NULL when any is NULL or `d` is not positive (never a division
# by zero). Fits while |n| < 1e8 USD and |m| < 1e14 (a per-million price: m = 1e6).
EXACT_RATIO_MACROS_SQL = f"""
CREATE OR REPLACE TEMP MACRO money_units(x) AS
    CAST(CAST(x AS {MONEY_SQL_TYPE}) * CAST(1000000000000 AS HUGEINT) AS HUGEINT);
CREATE OR REPLACE TEMP MACRO count_units(x) AS
    CAST(round(CAST(x AS {MONEY_SQL_TYPE}), 6) * CAST(1000000 AS HUGEINT) AS HUGEINT);
CREATE OR REPLACE TEMP MACRO half_even_div(a, b) AS
    sign(a) * (abs(a) // b + CASE WHEN 2 * (abs(a) % b) > b OR (2 * (abs(a) % b) = b AND (abs(a) // b) % 2 = 1)
                                  THEN 1 ELSE 0 END);
CREATE OR REPLACE TEMP MACRO exact_ratio(n, m, d) AS
    CAST(CAST(half_even_div(money_units(n) * count_units(m),
                            CASE WHEN count_units(d) > 0 THEN count_units(d) END) AS DECIMAL(38, 0))
         * CAST(0.000000000001 AS DECIMAL(13, 12)) AS {MONEY_SQL_TYPE});
"""


@functools.cache
def _fitting_text(shift: int) -> re.Pattern[str]:
    """Plain decimal text that fits DECIMAL(38, 12) once multiplied by 10**shift (shift <= 0)."""
    return re.compile(rf"-?[0-9]{{1,{MONEY_INTEGER_DIGITS - shift}}}(?:\.[0-9]{{1,{MONEY_SCALE + shift}}})?")


class MoneyValueError(ValueError):
    """A value of a money column that is not an exact amount; `index` is its position in the column."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index


def money_texts(
    values: Sequence[object], *, shift: int = 0, optional: bool = False
) -> tuple[list[str | None], dict[int, Decimal]]:
    """A column of payload amounts as exact DECIMAL(38, 12) text in one pass, and the rounding applied by position.

    Each value means what `fit_money(exact_decimal(value).scaleb(shift))` makes of it (`shift=-2`: cents to
    dollars); plain text and JSON numbers parsed as Decimal that already fit the column's scale take a fast
    path (one regex match, no arithmetic), the rest (exponents, spaces, more than 12 decimals, bad values)
    go through `fit_money` one by one. `optional`: None stays None. Raises `MoneyValueError` at the first
    bad value with its position, so that the caller can name the day and field.
    """
    texts = _plain_decimal_texts(values, shift, optional)
    if texts is not None:
        return texts, {}
    texts = []
    rounding: dict[int, Decimal] = {}
    fits = _fitting_text(shift).fullmatch
    for index, value in enumerate(values):
        kind = type(value)
        if kind is str or kind is Decimal:
            text: str = value if kind is str else format(value, "f")  # type: ignore[assignment]
            if fits(text):
                texts.append(format(Decimal(text).scaleb(shift), "f") if shift else text)
                continue
        elif value is None and optional:
            texts.append(None)
            continue
        try:
            amount, rounded = fit_money(exact_decimal(value).scaleb(shift) if shift else value)
        except ValueError as exc:
            raise MoneyValueError(index, str(exc)) from None
        texts.append(money_text(amount))
        if rounded:
            rounding[index] = rounded
    return texts, rounding


SHORT_TEXT = 14  # plain decimal text this short has at most 12 decimals and 14 digits: it fits DECIMAL(38, 12)
_WIDE = Context(prec=80)  # shifts stay exact whatever the digits


def _plain_decimal_texts(values: Sequence[object], shift: int, optional: bool) -> list[str | None] | None:
    """The column's text when every value is a Decimal (or None, when `optional`) whose plain text fits
    the column: checked for the whole column at once (no exponent, NaN or infinity anywhere, no text
    longer than `SHORT_TEXT`), so typed decoding pays ~0.3 us a value. None: take the value-by-value path."""
    kinds = set(map(type, values))
    if not kinds <= ({Decimal, type(None)} if optional else {Decimal}):
        return None
    present: list[Decimal] = [v for v in values if v is not None] if len(kinds) > 1 else values  # type: ignore[assignment]
    shifted = [_WIDE.scaleb(v, shift) for v in present] if shift else present
    texts = list(map(str, shifted))
    joined = "".join(texts)
    if "E" in joined or "N" in joined or "I" in joined or (texts and max(map(len, texts)) > SHORT_TEXT):
        return None
    if len(kinds) == 1:
        return texts  # type: ignore[return-value]
    found = iter(texts)
    return [None if v is None else next(found) for v in values]


def day_money_texts(
    source: str,
    field: str,
    values: Sequence[object],
    day: date,
    rounding_usd: dict[date, Decimal] | None,
    *,
    shift: int = 0,
    optional: bool = False,
) -> list[str | None]:
    """One day's money column of a payload as exact text (`money_texts`): the rounding applied is added to
    `rounding_usd[day]` (None: not counted), a bad value is a `SourcePayloadError` naming source, day and field."""
    try:
        texts, rounding = money_texts(values, shift=shift, optional=optional)
    except MoneyValueError as exc:
        raise SourcePayloadError(source, f"field '{field}': {exc}", day) from None
    if rounding and rounding_usd is not None:
        rounding_usd[day] = rounding_usd.get(day, Decimal(0)) + sum(rounding.values(), Decimal(0))
    return texts
