"""Anthropic organisation costs: `GET /v1/organizations/cost_report` with an admin key (no Dagster).

Grouped by workspace and description, so input, output, cache-read and cache-write tokens stay
separate lines. `amount` is a decimal string in **cents**; it is converted to dollars exactly here,
at the client boundary. `limit` is at most 31 daily buckets per page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from aispend_pipeline.core.columnar import AMOUNT, ColumnarReader, money_column, require_all
from aispend_pipeline.core.days import bucket_day
from aispend_pipeline.core.decoding import PayloadStruct
from aispend_pipeline.core.http import (
    ApiClient,
    BucketReader,
    Chunk,
    Columns,
    chunk_columns,
    iter_daily_bucket_columns,
)
from aispend_pipeline.core.money import day_money_texts
from aispend_pipeline.errors import SourcePayloadError

SOURCE = "anthropic"
DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
MAX_BUCKETS_PER_PAGE = 31
# Kept as text, whatever new enum value the provider adds (workspace and description are ids and names).
TEXT_FIELDS = ("workspace_id", "description", "cost_type", "model", "service_tier", "token_type", "context_window")


@dataclass(frozen=True)
class AnthropicCostLine:
    usage_date: date
    workspace_id: str | None
    description: str | None
    cost_type: str | None
    model: str | None
    service_tier: str | None
    token_type: str | None
    context_window: str | None
    amount_usd: Decimal


class AnthropicCostsClient:
    def __init__(self, admin_key: str, base_url: str = DEFAULT_BASE_URL, **http_options: Any) -> None:
        self.api = ApiClient(
            SOURCE,
            base_url,
            {"x-api-key": admin_key, "anthropic-version": API_VERSION},
            credential_setting="ANTHROPIC_ADMIN_KEY",
            **http_options,
        )
        self.rounding_usd: dict[date, Decimal] = {}

    @property
    def request_count(self) -> int:
        return self.api.request_count

    def daily_costs(self, start: date, end: date) -> list[AnthropicCostLine]:
        """Every cost line of the UTC days [start, end), as records (the pipeline stores the column chunks)."""
        return [
            AnthropicCostLine(*row[:-1], amount_usd=Decimal(row[-1]))
            for chunk in self.daily_cost_chunks(start, end)
            for row in zip(*chunk_columns(chunk).values(), strict=True)
        ]

    def daily_cost_chunks(self, start: date, end: date) -> Iterator[Chunk]:
        """The cost lines of the UTC days [start, end) as column chunks named like `AnthropicCostLine`'s
        fields, dollars as exact text, 31 days per request at most (no object per line)."""
        params: dict[str, Any] = {
            "starting_at": _rfc3339(start),
            "ending_at": _rfc3339(end),
            "bucket_width": "1d",
            "group_by[]": ["workspace_id", "description"],
            "limit": min(max((end - start).days, 1), MAX_BUCKETS_PER_PAGE),
        }
        return iter_daily_bucket_columns(
            self.api, "/v1/organizations/cost_report", params, self.bucket_reader(), start, end
        )

    def bucket_reader(self) -> BucketReader:
        """How a bucket becomes columns: as Arrow columns a page at a time, or field by field."""
        columnar = ColumnarReader("starting_at", pa.string(), _RESULT_COLUMNS, self._columns, self.rounding_usd)
        return BucketReader(_Bucket, _bucket_day, self._fast, self._slow, columnar)

    def _columns(self, results: pa.StructArray, days: pa.Array, rounding: dict[date, Decimal]) -> dict[str, pa.Array]:
        require_all(results.field("currency"), "USD")  # else the field-by-field path names it (or accepts "usd")
        return {
            **{name: results.field(name) for name in TEXT_FIELDS},
            "amount_usd": money_column(results.field("amount"), days, rounding, shift=-2),
        }

    def _fast(self, day: date, results: list[_Result]) -> Columns | None:
        if any(r.currency != "USD" or r.amount is None for r in results):
            return None  # the field-by-field path names the problem (or accepts "usd")
        columns = {name: [getattr(r, name) for r in results] for name in TEXT_FIELDS}
        return self._with_dollars(day, columns, [r.amount for r in results])

    def _slow(self, day: date, results: list[dict[str, Any]]) -> Columns:
        columns: dict[str, list[Any]] = {name: [] for name in TEXT_FIELDS}
        amounts = []
        texts = [(name, columns[name]) for name in TEXT_FIELDS]
        for result in results:
            currency = result.get("currency")
            if currency != "USD" and str(currency or "").upper() != "USD":
                raise SourcePayloadError(
                    SOURCE, f"field 'currency' is {str(currency or '').upper()!r}, expected 'USD'", day
                )
            if "amount" not in result:
                raise SourcePayloadError(SOURCE, "field 'amount' is missing", day)
            amounts.append(result["amount"])
            for name, column in texts:
                value = result.get(name)
                column.append(value if value is None or type(value) is str else str(value))
        return self._with_dollars(day, columns, amounts)

    def _with_dollars(self, day: date, columns: Columns, cents: list[Any]) -> Columns:
        # Cents carry up to 6 decimals: the scale is checked on dollars, after the exact shift.
        dollars = day_money_texts(SOURCE, "amount", cents, day, self.rounding_usd, shift=-2)
        return {"usage_date": [day] * len(dollars), **columns, "amount_usd": dollars}


_RESULT_COLUMNS = pa.struct([("currency", pa.string()), ("amount", AMOUNT), *((n, pa.string()) for n in TEXT_FIELDS)])


class _Result(PayloadStruct):
    currency: str | None = None
    amount: Decimal | None = None  # cents, as a decimal string
    workspace_id: str | None = None
    description: str | None = None
    cost_type: str | None = None
    model: str | None = None
    service_tier: str | None = None
    token_type: str | None = None
    context_window: str | None = None


class _Bucket(PayloadStruct):
    starting_at: str
    results: list[_Result] | None = None


def _rfc3339(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _bucket_day(bucket: Any, start: date, end: date) -> date:
    try:
        started = datetime.fromisoformat(str(bucket["starting_at"]).replace("Z", "+00:00")).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        raise SourcePayloadError(SOURCE, "field 'starting_at' of a bucket is missing or not RFC 3339") from None
    return bucket_day(SOURCE, started, bucket["starting_at"], start, end)
