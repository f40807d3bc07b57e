"""OpenAI completions usage: `GET /organization/usage/completions` with the admin key (no Dagster).

Tokens per day, project and model, beside the billed cost (never instead of it): the unit-cost mart
divides the cost lines by these tokens. Daily buckets (`limit` at most 31 a page), cursor pagination
as for costs. `input_tokens` includes cached and cache-write tokens; `input_uncached_tokens` is newer
and may be absent on older data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

import pyarrow as pa

from aispend_pipeline.core import columnar
from aispend_pipeline.core.decoding import PayloadStruct
from aispend_pipeline.core.http import ApiClient, BucketReader, Chunk, Columns, chunk_columns, iter_daily_bucket_columns
from aispend_pipeline.core.tokens import token_columns, token_count
from aispend_pipeline.sources.base import record_columns
from aispend_pipeline.sources.openai.client import DEFAULT_BASE_URL, SOURCE, _day, _unix

PATH = "/organization/usage/completions"
MAX_BUCKETS_PER_PAGE = 31


@dataclass(frozen=True)
class OpenAIUsageLine:
    usage_date: date
    project_id: str | None
    model: str | None
    input_tokens: int
    input_cached_tokens: int | None
    input_cache_write_tokens: int | None
    input_uncached_tokens: int | None
    output_tokens: int
    num_model_requests: int


class OpenAIUsageClient:
    def __init__(self, admin_key: str, base_url: str = DEFAULT_BASE_URL, **http_options: Any) -> None:
        self.api = ApiClient(
            SOURCE,
            base_url,
            {"Authorization": f"Bearer {admin_key}"},
            credential_setting="OPENAI_ADMIN_KEY",
            **http_options,
        )

    @property
    def request_count(self) -> int:
        return self.api.request_count

    def daily_usage(self, start: date, end: date) -> list[OpenAIUsageLine]:
        """Completions tokens of the UTC days [start, end) per project and model, as records."""
        return [
            OpenAIUsageLine(*row)
            for chunk in self.daily_usage_chunks(start, end)
            for row in zip(*chunk_columns(chunk).values(), strict=True)
        ]

    def daily_usage_chunks(self, start: date, end: date) -> Iterator[Chunk]:
        """The same as column chunks named like `OpenAIUsageLine`'s fields, 31 days per request at most."""
        params: dict[str, Any] = {
            "start_time": _unix(start),
            "end_time": _unix(end),
            "bucket_width": "1d",
            "group_by[]": ["project_id", "model"],
            "limit": min(max((end - start).days, 1), MAX_BUCKETS_PER_PAGE),
        }
        return iter_daily_bucket_columns(self.api, PATH, params, self.bucket_reader(), start, end)

    def bucket_reader(self) -> BucketReader:
        """How a bucket becomes columns: as Arrow columns a page at a time, or field by field."""
        return BucketReader(_Bucket, _day, _fast, _slow, COLUMNAR)


FIELDS = tuple(f.name for f in fields(OpenAIUsageLine))


class _Result(PayloadStruct):
    project_id: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    input_cached_tokens: int | None = None
    input_cache_write_tokens: int | None = None
    input_uncached_tokens: int | None = None
    output_tokens: int | None = None
    num_model_requests: int | None = None


class _Bucket(PayloadStruct):
    start_time: int
    results: list[_Result] | None = None


def _fast(day: date, results: list[_Result]) -> Columns | None:
    columns = token_columns(results, ("project_id", "model"), FIELDS[3:], REQUIRED, AS_ZERO)
    return None if columns is None else {"usage_date": [day] * len(results), **columns}


REQUIRED, AS_ZERO = ("input_tokens", "output_tokens"), ("num_model_requests",)


def _columns(results: pa.StructArray, days: pa.Array, rounding: dict[date, Any]) -> dict[str, pa.Array]:
    return {
        "project_id": results.field("project_id"),
        "model": results.field("model"),
        **columnar.count_columns(results, FIELDS[3:], REQUIRED, AS_ZERO),
    }


COLUMNAR = columnar.ColumnarReader(
    "start_time",
    pa.int64(),
    pa.struct([("project_id", pa.string()), ("model", pa.string()), *((n, pa.int64()) for n in FIELDS[3:])]),
    _columns,
)


def _slow(day: date, results: list[dict[str, Any]]) -> Columns:
    return record_columns([_line(day, result) for result in results], FIELDS)


def _line(day: date, result: dict[str, Any]) -> OpenAIUsageLine:
    def count(field: str, required: bool = True) -> int | None:
        return token_count(SOURCE, result, field, day, required=required)

    return OpenAIUsageLine(
        usage_date=day,
        project_id=result.get("project_id"),
        model=result.get("model"),
        input_tokens=count("input_tokens") or 0,
        input_cached_tokens=count("input_cached_tokens", required=False),
        input_cache_write_tokens=count("input_cache_write_tokens", required=False),
        input_uncached_tokens=count("input_uncached_tokens", required=False),
        output_tokens=count("output_tokens") or 0,
        num_model_requests=count("num_model_requests", required=False) or 0,
    )
