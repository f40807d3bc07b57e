"""A page of daily buckets read as Arrow columns in C++, with no Python object per line.

The page's buckets (its `data` elements, undecoded) go through Arrow's JSON reader with the endpoint's
schema, and the client turns the results into its raw table's columns with Arrow compute: money fitted to
DECIMAL(38, 12) exactly (half-even, the rounding reported per day), counts checked. Anything this path
does not expect (a value of another type, a missing amount, another currency, a negative count, more
digits than it reads) raises `Unusual`, and the rest of the page, from that batch of buckets on, is
decoded field by field instead, which accepts the same answers and names the exact problem: both paths
give the same rows.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from aispend_pipeline.core.money import MONEY_SCALE

# A JSON amount is read exactly with up to 30 integer and 30 fraction digits (more: the field-by-field path).
AMOUNT = pa.decimal256(60, 30)
MONEY = pa.decimal128(38, MONEY_SCALE)
BLOCK_BYTES = 4 << 20


class Unusual(Exception):
    """The page is not in the shape the columnar path reads."""


@dataclass(frozen=True)
class ColumnarReader:
    """How an endpoint's buckets read as Arrow columns.

    `time_field` (of `time_type`) is the bucket's start, read into a day by the endpoint's own `day_of`;
    `result_type` the struct of one result (fields absent from it are ignored, absent from a result are
    null); `columns(results, days, rounding)` turns the flattened results and each one's day into the raw
    table's columns (money as `MONEY`, see `money_column`, its rounding added to the batch's `rounding`), or
    raises `Unusual`. A batch's rounding is added to `rounding_usd` once its rows are handed on.
    """

    time_field: str
    time_type: pa.DataType
    result_type: pa.StructType
    columns: Callable[[pa.StructArray, pa.Array, dict[date, Decimal]], dict[str, pa.Array]]
    rounding_usd: dict[date, Decimal] | None = None
    block_bytes: int = BLOCK_BYTES  # JSON read per batch (at least one bucket)


def read_batch(buckets: Sequence[msgspec.Raw | bytes], reader: ColumnarReader) -> pa.RecordBatch:
    """The buckets as one batch (`time_field`, `results`), a row per bucket; `Unusual` when one does not fit
    the schema."""
    schema = pa.schema([(reader.time_field, reader.time_type), ("results", pa.list_(reader.result_type))])
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    lines = b"\n".join(_one_line(r) for r in buckets)
    try:
        read = pj.read_json(io.BytesIO(lines), pj.ReadOptions(use_threads=False, block_size=len(lines) + 1), options)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        raise Unusual from None
    del lines
    return read.combine_chunks().to_batches()[0]


def _one_line(raw: msgspec.Raw | bytes) -> bytes:
    """A bucket as one line of newline-delimited JSON: a raw newline inside JSON is always whitespace (one in a
    string is written `\\n`), so a pretty-printed answer's bucket becomes one line."""
    return bytes(raw).replace(b"\n", b" ").replace(b"\r", b" ")


def batch_table(
    batch: pa.RecordBatch, days: list[date], reader: ColumnarReader, rounding: dict[date, Decimal]
) -> pa.Table | None:
    """A batch's results as the raw table's columns (`usage_date` first, money as `MONEY`); None: no results."""
    results = batch.column("results")
    flat = results.flatten()
    if len(flat) == 0:
        return None
    if flat.null_count:
        raise Unusual
    row_days = pa.array(days, pa.date32()).take(pc.list_parent_indices(results))
    try:
        columns = reader.columns(flat, row_days, rounding)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        raise Unusual from None
    return pa.table({"usage_date": row_days, **columns})


def money_column(
    amounts: pa.Array, days: pa.Array, rounding: dict[date, Decimal] | None, *, shift: int = 0, optional: bool = False
) -> pa.Array:
    """Amounts (read as `AMOUNT`) times 10**shift as DECIMAL(38, 12), rounded half-even to 12 decimals with
    the rounding added to `rounding[day]` (what `core.money.fit_money` does value by value). A missing
    amount (unless `optional`) or one too large for the column raises `Unusual`."""
    if amounts.null_count and not optional:
        raise Unusual
    exact = (
        pc.multiply(amounts, pa.scalar(Decimal(1).scaleb(shift), pa.decimal128(1 - shift, -shift)))
        if shift
        else amounts
    )
    fitted = pc.round(exact, ndigits=MONEY_SCALE, round_mode="half_to_even")
    changed = pc.fill_null(pc.not_equal(fitted, exact), False)
    if rounding is not None and pc.any(changed).as_py():
        differences = pc.subtract(fitted, exact).filter(changed).to_pylist()
        for day, difference in zip(days.filter(changed).to_pylist(), differences, strict=True):
            rounding[day] = rounding.get(day, Decimal(0)) + difference
    return fitted.cast(MONEY)  # a value past 26 integer digits fails the cast: Unusual


def field(values: pa.StructArray, *path: str) -> pa.Array:
    """A nested field (`field(results, "cache_creation", "ephemeral_5m_input_tokens")`): null where the field
    or any struct on its path is missing."""
    return pc.struct_field(values, list(path))


def require_all(values: pa.Array, expected: str) -> None:
    """Every value is `expected` (none missing), else `Unusual`: e.g. a currency the typed path must look at."""
    if values.null_count or not pc.all(pc.equal(values, expected)).as_py():
        raise Unusual


def count_columns(
    results: pa.StructArray,
    names: Sequence[str],
    required: Sequence[str] = (),
    as_zero: Sequence[str] = (),
    paths: Mapping[str, tuple[str, ...]] | None = None,
) -> dict[str, pa.Array]:
    """Count columns of usage results (what `core.tokens.token_columns` does for typed records): each name
    read at its path in the payload (`paths`, default the name itself), checked by `counts`."""
    paths = paths or {}
    return {
        name: counts(field(results, *paths.get(name, (name,))), required=name in required, as_zero=name in as_zero)
        for name in names
    }


def counts(values: pa.Array, *, required: bool = False, as_zero: bool = False) -> pa.Array:
    """Token or request counts (read as int64): a missing one is 0 (`as_zero`), None, or `Unusual` when
    `required`; a negative one is `Unusual` (the field-by-field path names it)."""
    if values.null_count:
        if as_zero:
            values = pc.fill_null(values, 0)
        elif required:
            raise Unusual
    smallest = pc.min(values).as_py()
    if smallest is not None and smallest < 0:
        raise Unusual
    return values
