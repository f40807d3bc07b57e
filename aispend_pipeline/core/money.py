"""Exact money: amounts stay `Decimal` from the provider's payload to the DuckDB `DECIMAL` column.

Floats never carry money: JSON is parsed with `parse_float=Decimal`, and frames carry amounts as
decimal text that DuckDB casts to `DECIMAL(38, 12)` on insert.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MONEY_SCALE = 12
MONEY_SQL_TYPE = f"DECIMAL(38, {MONEY_SCALE})"
CENT = Decimal("0.01")
# Decimal text as stored: optional sign, digits, at most MONEY_SCALE fractional digits.
MONEY_TEXT_PATTERN = rf"-?\d+(\.\d{{1,{MONEY_SCALE}}})?"


def parse_money(value: object) -> Decimal:
    """A finite Decimal from a JSON number (parsed as Decimal), an int or a decimal string.

    Raises ValueError with a short reason; callers add which source, day and field.
    """
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise ValueError(f"expected a decimal amount, got {value!r}")
    try:
        amount = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError):
        raise ValueError(f"expected a decimal amount, got {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"expected a finite amount, got {value!r}")
    if -amount.as_tuple().exponent > MONEY_SCALE:  # type: ignore[operator]
        normalised = amount.normalize()
        if -normalised.as_tuple().exponent > MONEY_SCALE:  # type: ignore[operator]
            raise ValueError(f"amount {value!r} has more than {MONEY_SCALE} decimal places")
        amount = normalised
    return amount


def money_text(amount: Decimal) -> str:
    """Plain decimal text (no exponent) that DuckDB casts to DECIMAL without loss."""
    return format(amount, "f")


def cents_to_usd(cents: Decimal) -> Decimal:
    """Cents to dollars, exactly (a shift of the exponent, no rounding)."""
    return cents.scaleb(-2)


def round_to_cent(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def spread_over_days(total: Decimal, days: list[date]) -> list[Decimal]:
    """Split a cent-rounded total evenly over days in whole cents, remainder cents on the last days.

    The shares always sum exactly to `total` (negative totals, e.g. credit notes, included).
    """
    cents = int(round_to_cent(total) * 100)
    base, remainder = divmod(cents, len(days))
    first_with_extra = len(days) - remainder
    return [Decimal(base + (1 if i >= first_with_extra else 0)).scaleb(-2) for i in range(len(days))]
