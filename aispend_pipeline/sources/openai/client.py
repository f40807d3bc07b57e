"""OpenAI organisation costs: `GET /organization/costs` with an admin key (plain `requests`, no Dagster).

Daily buckets grouped by project and line item, cursor pagination (`page` = previous `next_page`
while `has_more`). `limit` counts buckets (1-180), so a 60-day range is one request per page of
results. `amount.value` is in dollars and arrives as a JSON number or a string: both are read exactly,
a page at a time as Arrow columns (`core.columnar`), or field by field (msgspec, exact Decimals) when a
page holds anything that path does not expect.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from aispend_pipeline.core.columnar import AMOUNT, ColumnarReader, Unusual, money_column, require_all
from aispend_pipeline.core.days import bucket_day, utc_midnight
from aispend_pipeline.core.decoding import PayloadStruct
from aispend_pipeline.core.http import ApiClient, BucketReader, Chunk, Columns, chunk_columns, iter_daily_bucket_columns
from aispend_pipeline.core.money import day_money_texts
from aispend_pipeline.errors import SourcePayloadError

SOURCE = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_BUCKETS_PER_PAGE = 180


@dataclass(frozen=True)
class OpenAICostLine:
    usage_date: date
    project_id: str | None
    line_item: str | None
    amount_usd: Decimal
    quantity: Decimal | None
    quantity_unit: str | None


class OpenAICostsClient:
    def __init__(self, admin_key: str, base_url: str = DEFAULT_BASE_URL, **http_options: Any) -> None:
        self.api = ApiClient(
            SOURCE,
            base_url,
            {"Authorization": f"Bearer {admin_key}"},
            credential_setting="OPENAI_ADMIN_KEY",
            **http_options,
        )
        self.rounding_usd: dict[date, Decimal] = {}

    @property
    def request_count(self) -> int:
        return self.api.request_count

    def daily_costs(self, start: date, end: date) -> list[OpenAICostLine]:
        """Every cost line of the UTC days [start, end), as records (the pipeline stores the column chunks)."""
        return [
            OpenAICostLine(day, project, item, Decimal(amount), None if quantity is None else Decimal(quantity), unit)
            for chunk in self.daily_cost_chunks(start, end)
            for day, project, item, amount, quantity, unit in zip(*chunk_columns(chunk).values(), strict=True)
        ]

    def daily_cost_chunks(self, start: date, end: date) -> Iterator[Chunk]:
        """The cost lines of the UTC days [start, end) as column chunks named like `OpenAICostLine`'s fields,
        money as exact text, in as few requests as the page size allows (no object per line).

        Every day must have its bucket; a bucket repeated across pages is merged, not counted twice.
        """
        params: dict[str, Any] = {
            "start_time": _unix(start),
            "end_time": _unix(end),
            "bucket_width": "1d",
            "group_by[]": ["project_id", "line_item"],
            "limit": min(max((end - start).days, 1), MAX_BUCKETS_PER_PAGE),
        }
        return iter_daily_bucket_columns(self.api, "/organization/costs", params, self.bucket_reader(), start, end)

    def bucket_reader(self) -> BucketReader:
        """How a bucket becomes columns: as Arrow columns a page at a time, or field by field."""
        columnar = ColumnarReader("start_time", pa.int64(), _RESULT_COLUMNS, self._columns, self.rounding_usd)
        return BucketReader(_Bucket, _day, self._fast, self._slow, columnar)

    def _columns(self, results: pa.StructArray, days: pa.Array, rounding: dict[date, Decimal]) -> dict[str, pa.Array]:
        amount = results.field("amount")
        if amount.null_count:
            raise Unusual  # the field-by-field path names the problem
        require_all(amount.field("currency"), "usd")  # else the field-by-field path names it (or accepts "USD")
        return {
            "project_id": results.field("project_id"),
            "line_item": results.field("line_item"),
            "amount_usd": money_column(amount.field("value"), days, rounding),
            "quantity": money_column(results.field("quantity"), days, None, optional=True),
            "quantity_unit": results.field("quantity_unit"),
        }

    def _fast(self, day: date, results: list[_Result]) -> Columns | None:
        amounts = [r.amount for r in results]
        if any(a is None or a.currency != "usd" or a.value is None for a in amounts):
            return None  # the field-by-field path names the problem (or accepts "USD")
        return self._money_columns(
            day,
            [r.project_id for r in results],
            [r.line_item for r in results],
            [a.value for a in amounts],  # type: ignore[union-attr]
            [r.quantity for r in results],
            [r.quantity_unit for r in results],
        )

    def _slow(self, day: date, results: list[dict[str, Any]]) -> Columns:
        projects, items, amounts, quantities, units = [], [], [], [], []
        for result in results:
            amount = result.get("amount")
            if not isinstance(amount, dict):
                raise SourcePayloadError(SOURCE, f"field 'amount' is {amount!r}, expected an object with a value", day)
            currency = amount.get("currency")
            if currency != "usd" and str(currency or "").lower() != "usd":
                raise SourcePayloadError(
                    SOURCE, f"field 'amount.currency' is {str(currency or '').lower()!r}, expected 'usd'", day
                )
            if "value" not in amount:
                raise SourcePayloadError(SOURCE, "field 'amount.value' is missing", day)
            projects.append(result.get("project_id"))
            items.append(result.get("line_item"))
            amounts.append(amount["value"])
            quantities.append(result.get("quantity"))
            units.append(result.get("quantity_unit"))
        return self._money_columns(day, projects, items, amounts, quantities, units)

    def _money_columns(
        self, day: date, projects: list, items: list, amounts: list, quantities: list, units: list
    ) -> Columns:
        amount_texts = day_money_texts(SOURCE, "amount.value", amounts, day, self.rounding_usd)
        quantity_texts = day_money_texts(SOURCE, "quantity", quantities, day, None, optional=True)
        return {
            "usage_date": [day] * len(amounts),
            "project_id": projects,
            "line_item": items,
            "amount_usd": amount_texts,
            "quantity": quantity_texts,
            "quantity_unit": units,
        }


_RESULT_COLUMNS = pa.struct(
    [
        ("amount", pa.struct([("value", AMOUNT), ("currency", pa.string())])),
        ("project_id", pa.string()),
        ("line_item", pa.string()),
        ("quantity", AMOUNT),
        ("quantity_unit", pa.string()),
    ]
)


class _Amount(PayloadStruct):
    value: Decimal | None = None
    currency: str | None = None


class _Result(PayloadStruct):
    amount: _Amount | None = None
    project_id: str | None = None
    line_item: str | None = None
    quantity: Decimal | None = None
    quantity_unit: str | None = None


class _Bucket(PayloadStruct):
    start_time: int
    results: list[_Result] | None = None


def _unix(day: date) -> int:
    return int(utc_midnight(day).timestamp())


def _day(bucket: Any, start: date, end: date) -> date:
    try:
        started = datetime.fromtimestamp(int(bucket["start_time"]), tz=UTC)
    except (KeyError, TypeError, ValueError):
        raise SourcePayloadError(SOURCE, "field 'start_time' of a bucket is missing or not a unix time") from None
    return bucket_day(SOURCE, started, bucket["start_time"], start, end)
