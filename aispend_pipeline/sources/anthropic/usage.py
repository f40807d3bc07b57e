"""Anthropic messages usage: `GET /v1/organizations/usage_report/messages` with the admin key (no Dagster).

The cost report has no token counts; this report has them per day, workspace and model, beside the
billed cost (never instead of it). Daily buckets (`limit` at most 31 a page), cursor pagination as for
the cost report; cache writes arrive nested in `cache_creation` by cache lifetime (5m, 1h).
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
from aispend_pipeline.sources.anthropic.client import (
    API_VERSION,
    DEFAULT_BASE_URL,
    MAX_BUCKETS_PER_PAGE,
    SOURCE,
    _bucket_day,
    _rfc3339,
)
from aispend_pipeline.sources.base import record_columns

PATH = "/v1/organizations/usage_report/messages"


@dataclass(frozen=True)
class AnthropicUsageLine:
    usage_date: date
    workspace_id: str | None
    model: str | None
    uncached_input_tokens: int
    cache_read_input_tokens: int
    cache_creation_5m_input_tokens: int
    cache_creation_1h_input_tokens: int
    output_tokens: int
    web_search_requests: int


class AnthropicUsageClient:
    def __init__(self, admin_key: str, base_url: str = DEFAULT_BASE_URL, **http_options: Any) -> None:
        self.api = ApiClient(
            SOURCE,
            base_url,
            {"x-api-key": admin_key, "anthropic-version": API_VERSION},
            credential_setting="ANTHROPIC_ADMIN_KEY",
            **http_options,
        )

    @property
    def request_count(self) -> int:
        return self.api.request_count

    def daily_usage(self, start: date, end: date) -> list[AnthropicUsageLine]:
        """Message tokens of the UTC days [start, end) per workspace and model, as records."""
        return [
            AnthropicUsageLine(*row)
            for chunk in self.daily_usage_chunks(start, end)
            for row in zip(*chunk_columns(chunk).values(), strict=True)
        ]

    def daily_usage_chunks(self, start: date, end: date) -> Iterator[Chunk]:
        """The same as column chunks named like `AnthropicUsageLine`'s fields, 31 days per request at most."""
        params: dict[str, Any] = {
            "starting_at": _rfc3339(start),
            "ending_at": _rfc3339(end),
            "bucket_width": "1d",
            "group_by[]": ["workspace_id", "model"],
            "limit": min(max((end - start).days, 1), MAX_BUCKETS_PER_PAGE),
        }
        return iter_daily_bucket_columns(self.api, PATH, params, self.bucket_reader(), start, end)

    def bucket_reader(self) -> BucketReader:
        """How a bucket becomes columns: as Arrow columns a page at a time, or field by field."""
        return BucketReader(_Bucket, _bucket_day, _fast, _slow, COLUMNAR)


FIELDS = tuple(f.name for f in fields(AnthropicUsageLine))


class _CacheCreation(PayloadStruct):
    ephemeral_5m_input_tokens: int | None = None
    ephemeral_1h_input_tokens: int | None = None


class _ServerToolUse(PayloadStruct):
    web_search_requests: int | None = None


class _Result(PayloadStruct):
    workspace_id: str | None = None
    model: str | None = None
    uncached_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: _CacheCreation | None = None
    output_tokens: int | None = None
    server_tool_use: _ServerToolUse | None = None

    @property
    def cache_creation_5m_input_tokens(self) -> int | None:
        return self.cache_creation.ephemeral_5m_input_tokens if self.cache_creation else None

    @property
    def cache_creation_1h_input_tokens(self) -> int | None:
        return self.cache_creation.ephemeral_1h_input_tokens if self.cache_creation else None

    @property
    def web_search_requests(self) -> int | None:
        return self.server_tool_use.web_search_requests if self.server_tool_use else None


class _Bucket(PayloadStruct):
    starting_at: str
    results: list[_Result] | None = None


REQUIRED = ("uncached_input_tokens", "cache_read_input_tokens", "output_tokens")
AS_ZERO = ("cache_creation_5m_input_tokens", "cache_creation_1h_input_tokens", "web_search_requests")
NESTED = {  # the line's count: where the payload nests it
    "cache_creation_5m_input_tokens": ("cache_creation", "ephemeral_5m_input_tokens"),
    "cache_creation_1h_input_tokens": ("cache_creation", "ephemeral_1h_input_tokens"),
    "web_search_requests": ("server_tool_use", "web_search_requests"),
}


def _fast(day: date, results: list[_Result]) -> Columns | None:
    columns = token_columns(results, ("workspace_id", "model"), FIELDS[3:], REQUIRED, AS_ZERO)
    return None if columns is None else {"usage_date": [day] * len(results), **columns}


def _columns(results: pa.StructArray, days: pa.Array, rounding: dict[date, Any]) -> dict[str, pa.Array]:
    return {
        "workspace_id": results.field("workspace_id"),
        "model": results.field("model"),
        **columnar.count_columns(results, FIELDS[3:], REQUIRED, AS_ZERO, NESTED),
    }


COLUMNAR = columnar.ColumnarReader(
    "starting_at",
    pa.string(),
    pa.struct(
        [
            ("workspace_id", pa.string()),
            ("model", pa.string()),
            ("uncached_input_tokens", pa.int64()),
            ("cache_read_input_tokens", pa.int64()),
            (
                "cache_creation",
                pa.struct([("ephemeral_5m_input_tokens", pa.int64()), ("ephemeral_1h_input_tokens", pa.int64())]),
            ),
            ("output_tokens", pa.int64()),
            ("server_tool_use", pa.struct([("web_search_requests", pa.int64())])),
        ]
    ),
    _columns,
)


def _slow(day: date, results: list[dict[str, Any]]) -> Columns:
    return record_columns([_line(day, result) for result in results], FIELDS)


def _line(day: date, result: dict[str, Any]) -> AnthropicUsageLine:
    def count(field: str, required: bool = True) -> int:
        return token_count(SOURCE, result, field, day, required=required) or 0

    return AnthropicUsageLine(
        usage_date=day,
        workspace_id=result.get("workspace_id"),
        model=result.get("model"),
        uncached_input_tokens=count("uncached_input_tokens"),
        cache_read_input_tokens=count("cache_read_input_tokens"),
        cache_creation_5m_input_tokens=count("cache_creation.ephemeral_5m_input_tokens", required=False),
        cache_creation_1h_input_tokens=count("cache_creation.ephemeral_1h_input_tokens", required=False),
        output_tokens=count("output_tokens"),
        web_search_requests=count("server_tool_use.web_search_requests", required=False),
    )
