"""OpenAI's `GET /v1/organization/costs` and `/usage/completions`, served from the synthetic organisation.

Faithful to the wire format the real client must survive: bearer admin key, `limit` counted in daily
buckets (1-180), `group_by` with or without brackets, opaque cursors, and `amount.value` sometimes a JSON
string instead of a number. The completions usage (at most 31 daily buckets a page) carries exactly the tokens
the cost lines bill, grouped by project and model.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aispend_pipeline.simulators.base import HttpSimulator
from aispend_pipeline.simulators.org import OpenAILine, OpenAIUsage
from aispend_pipeline.simulators.paging import (
    aggregate,
    check_choices,
    completed_days,
    envelope,
    missing,
    paginate,
    require_header,
    unix_param,
)
from aispend_pipeline.simulators.server import HttpError, Request, Route

DEMO_KEY = "sk-admin-simulator"
PATH = "/v1/organization/costs"
MAX_LIMIT = 180
GROUP_BY = ("project_id", "line_item", "user_id", "api_key_id", "api_source")
DIMS = {"project_id": ("project_id",), "line_item": ("line_item", "tokens")}
USAGE_PATH = "/v1/organization/usage/completions"
USAGE_MAX_LIMIT = 31
USAGE_GROUP_BY = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")
USAGE_DIMS = {"project_id": ("project_id",), "model": ("model",)}
USAGE_SUMS = ("input_tokens", "input_cached_tokens", "input_uncached_tokens", "output_tokens", "num_model_requests")
_ERROR_KINDS = {
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error envelope."""
    kind, code = _ERROR_KINDS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class OpenAICostsSimulator(HttpSimulator):
    source = "openai"
    api_key = DEMO_KEY

    @property
    def env(self) -> dict[str, str]:
        return {"OPENAI_ADMIN_KEY": self.api_key, "OPENAI_BASE_URL": f"{self.url}/v1"}

    def expected_total_usd(self, day: date) -> Decimal:
        return self.org.expected_total_usd("openai", day)

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return error_body(status, message)

    def demo_mapping_rows(self) -> list[dict[str, str]]:
        """Projects to teams; `proj_sandbox` and org-level lines stay unallocated, as in a real org."""
        return [
            self.mapping_row("project_id", "proj_search", "search", "CC-210", "Search"),
            self.mapping_row("project_id", "proj_support_bot", "support", "CC-220", "Support Assistant"),
            self.mapping_row("project_id", "proj_data_platform", "data-platform", "CC-300", "Data Platform"),
        ]

    @property
    def routes(self) -> dict[str, Route]:
        return {PATH: self.costs, USAGE_PATH: self.completions_usage}

    def costs(self, request: Request) -> dict[str, Any]:
        require_header(request, "Authorization", f"Bearer {self.api_key}")
        start = unix_param(request, "start_time") or missing("start_time")
        end = unix_param(request, "end_time")
        if request.param("bucket_width", "1d") != "1d":
            raise HttpError(400, "bucket_width must be '1d' for costs")
        group_by = request.params("group_by")
        check_choices("group_by", group_by, GROUP_BY)
        page = paginate(request, completed_days(start, end), max_limit=MAX_LIMIT, cap=self.max_page_size)
        return envelope(page, lambda day: self._bucket(day, group_by), object="page")

    def _bucket(self, day: date, group_by: list[str]) -> dict[str, Any]:
        lines = aggregate(self.org.openai_lines(day), group_by, DIMS, sums=("amount_usd", "tokens"))
        return _day_bucket(day, [_result(line) for line in lines])

    def completions_usage(self, request: Request) -> dict[str, Any]:
        require_header(request, "Authorization", f"Bearer {self.api_key}")
        start = unix_param(request, "start_time") or missing("start_time")
        end = unix_param(request, "end_time")
        if request.param("bucket_width", "1d") != "1d":
            raise HttpError(400, "this simulator serves bucket_width '1d' only")
        group_by = request.params("group_by")
        check_choices("group_by", group_by, USAGE_GROUP_BY)
        page = paginate(request, completed_days(start, end), max_limit=USAGE_MAX_LIMIT, cap=self.max_page_size)
        return envelope(page, lambda day: self._usage_bucket(day, group_by), object="page")

    def _usage_bucket(self, day: date, group_by: list[str]) -> dict[str, Any]:
        usage = aggregate(self.org.openai_usage(day), group_by, USAGE_DIMS, sums=USAGE_SUMS)
        return _day_bucket(day, [_usage_result(row) for row in usage])


def _day_bucket(day: date, results: list[dict[str, Any]]) -> dict[str, Any]:
    started = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {
        "object": "bucket",
        "start_time": int(started.timestamp()),
        "end_time": int((started + timedelta(days=1)).timestamp()),
        "results": results,
    }


def _usage_result(row: OpenAIUsage) -> dict[str, Any]:
    """UsageCompletionsResult of openai-openapi: text tokens only, no audio or image, no cache writes."""
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": row.input_tokens,
        "input_cached_tokens": row.input_cached_tokens,
        "input_cache_write_tokens": 0,
        "input_uncached_tokens": row.input_uncached_tokens,
        "output_tokens": row.output_tokens,
        "input_text_tokens": row.input_uncached_tokens,
        "output_text_tokens": row.output_tokens,
        "input_cached_text_tokens": row.input_cached_tokens,
        "input_audio_tokens": 0,
        "input_cached_audio_tokens": 0,
        "output_audio_tokens": 0,
        "input_image_tokens": 0,
        "input_cached_image_tokens": 0,
        "output_image_tokens": 0,
        "num_model_requests": row.num_model_requests,
        "project_id": row.project_id,
        "user_id": None,
        "api_key_id": None,
        "model": row.model,
        "batch": None,
        "service_tier": None,
    }


def _result(line: OpenAILine) -> dict[str, Any]:
    # About a quarter of amounts go out as JSON strings, as seen live; which ones depends only on the value.
    as_text = int(line.amount_usd.scaleb(6)) % 4 == 0
    return {
        "object": "organization.costs.result",
        "amount": {"value": format(line.amount_usd, "f") if as_text else line.amount_usd, "currency": "usd"},
        "line_item": line.line_item,
        "project_id": line.project_id,
        "quantity": None if line.tokens is None else Decimal(f"{line.tokens}.0"),
        "quantity_unit": None if line.tokens is None else "tokens",
        "user_id": None,
        "api_key_id": None,
        "api_source": None,
    }
