"""Token counts from a usage payload: whole, non-negative integers, or a clear error naming the field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from aispend_pipeline.errors import SourcePayloadError


def token_count(source: str, result: dict[str, Any], field: str, day: date, *, required: bool = True) -> int | None:
    """`result[field]` (a dotted path for nested objects, e.g. `cache_creation.ephemeral_5m_input_tokens`).

    A missing optional field is None (older data lacks newer counters); a required one, a fraction, a
    negative or a non-number is an error that names the source, day and field.
    """
    value: Any = result
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        if required:
            raise SourcePayloadError(source, f"field '{field}' is missing", day)
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or value != int(value) or value < 0:
        raise SourcePayloadError(source, f"field '{field}' is {value!r}, expected a whole number of tokens >= 0", day)
    return int(value)


def token_columns(
    records: list[Any], texts: tuple[str, ...], counts: tuple[str, ...], required: tuple[str, ...], as_zero=()
) -> dict[str, list[Any]] | None:
    """Columns of typed usage records (msgspec Structs): `texts` as they are, `counts` checked; None when a
    `required` count is missing or any count is negative (the field-by-field path then names the problem).
    `as_zero`: a missing count means 0."""
    columns = {name: [getattr(r, name) for r in records] for name in (*texts, *counts)}
    for name in counts:
        values = columns[name]
        if name in as_zero:
            values = columns[name] = [0 if v is None else v for v in values]
        elif None in values:
            if name in required:
                return None
            values = [v for v in values if v is not None]
        if values and min(values) < 0:
            return None
    return columns
