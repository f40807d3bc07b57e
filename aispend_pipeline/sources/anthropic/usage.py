"""Anthropic messages usage: `GET /v1/organizations/usage_report/messages` with the admin key (no Dagster).

The cost report has no token counts; this report has them per day, workspace and model, beside the
billed cost (never instead of it). Daily buckets (`limit` at most 31 a page), cursor pagination as for
the cost report; cache writes arrive nested in `cache_creation` by cache lifetime (5m, 1h).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from aispend_pipeline.core.http import ApiClient, fetch_daily_buckets
from aispend_pipeline.core.tokens import token_count
from aispend_pipeline.sources.anthropic.client import (
    API_VERSION,
    DEFAULT_BASE_URL,
    MAX_BUCKETS_PER_PAGE,
    SOURCE,
    _bucket_day,
    _rfc3339,
)

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
        """Message tokens of the UTC days [start, end) per workspace and model, 31 days per request at most."""
        params: dict[str, Any] = {
            "starting_at": _rfc3339(start),
            "ending_at": _rfc3339(end),
            "bucket_width": "1d",
            "group_by[]": ["workspace_id", "model"],
            "limit": min(max((end - start).days, 1), MAX_BUCKETS_PER_PAGE),
        }
        return fetch_daily_buckets(
            self.api,
            PATH,
            params,
            _bucket_day,
            start,
            end,
            lambda days: [_line(day, result) for day, results in days for result in results],
        )


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
