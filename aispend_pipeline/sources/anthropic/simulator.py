"""Anthropic's `GET /v1/organizations/cost_report` and `/usage_report/messages`, from the synthetic organisation.

Faithful to the wire format the real client must survive: `x-api-key` plus `anthropic-version`, amounts
as decimal strings in cents, `limit` of at most 31 daily buckets, the default workspace as `null`, and
description fields null unless grouped by description. The messages usage report carries exactly the tokens
the cost lines bill (cost / list price), per workspace and model, with `cache_creation` as a nested object.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from aispend_pipeline.simulators.base import HttpSimulator
from aispend_pipeline.simulators.org import AnthropicLine, AnthropicUsage
from aispend_pipeline.simulators.paging import (
    Page,
    aggregate,
    check_choices,
    completed_days,
    envelope,
    missing,
    paginate,
    require_header,
    rfc3339_param,
)
from aispend_pipeline.simulators.server import HttpError, Request, Route

DEMO_KEY = "sk-ant-admin-simulator"
PATH = "/v1/organizations/cost_report"
API_VERSION = "2023-06-01"
MAX_LIMIT = 31
DIMS = {
    "workspace_id": ("workspace_id",),
    "description": ("description", "cost_type", "model", "service_tier", "token_type", "context_window"),
}
USAGE_PATH = "/v1/organizations/usage_report/messages"
USAGE_GROUP_BY = ("api_key_id", "workspace_id", "model", "service_tier", "context_window", "inference_geo", "speed")
USAGE_DIMS = {"workspace_id": ("workspace_id",), "model": ("model",)}
USAGE_SUMS = (
    "uncached_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
    "output_tokens",
)
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error"}
_ERROR_TYPES |= {404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error envelope."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


class AnthropicCostsSimulator(HttpSimulator):
    source = "anthropic"
    api_key = DEMO_KEY

    @property
    def env(self) -> dict[str, str]:
        return {"ANTHROPIC_ADMIN_KEY": self.api_key, "ANTHROPIC_BASE_URL": self.url}

    def expected_total_usd(self, day: date) -> Decimal:
        return self.org.expected_total_usd("anthropic", day)

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return error_body(status, message)

    def demo_mapping_rows(self) -> list[dict[str, str]]:
        """Workspaces to teams; the default workspace (and anything new) falls to the platform team."""
        return [
            self.mapping_row("workspace_id", "wrkspc_research", "research", "CC-500", "Research"),
            self.mapping_row("workspace_id", "wrkspc_support", "support", "CC-220", "Support Assistant"),
            self.mapping_row("workspace_id", "wrkspc_platform", "platform", "CC-100", "Developer Platform"),
            self.mapping_row("*", "*", "platform", "CC-100", "Developer Platform"),
        ]

    @property
    def routes(self) -> dict[str, Route]:
        return {PATH: self.cost_report, USAGE_PATH: self.messages_usage}

    def _daily_page(self, request: Request, group_by_choices: Collection[str], what: str) -> tuple[Page, list[str]]:
        require_header(request, "x-api-key", self.api_key)
        require_header(request, "anthropic-version", API_VERSION, status=400)
        start = rfc3339_param(request, "starting_at") or missing("starting_at")
        end = rfc3339_param(request, "ending_at")
        if request.param("bucket_width", "1d") != "1d":
            raise HttpError(400, f"bucket_width must be '1d' for {what}")
        group_by = request.params("group_by")
        check_choices("group_by", group_by, group_by_choices)
        page = paginate(request, completed_days(start, end), max_limit=MAX_LIMIT, cap=self.max_page_size)
        return page, group_by

    def cost_report(self, request: Request) -> dict[str, Any]:
        page, group_by = self._daily_page(request, DIMS, "the cost report")
        return envelope(page, lambda day: self._bucket(day, group_by))

    def messages_usage(self, request: Request) -> dict[str, Any]:
        page, group_by = self._daily_page(request, USAGE_GROUP_BY, "this simulator's usage report")
        return envelope(page, lambda day: self._usage_bucket(day, group_by))

    def _bucket(self, day: date, group_by: list[str]) -> dict[str, Any]:
        lines = aggregate(self.org.anthropic_lines(day), group_by, DIMS, sums=("amount_cents",))
        return _day_bucket(day, [_result(line) for line in lines])

    def _usage_bucket(self, day: date, group_by: list[str]) -> dict[str, Any]:
        usage = aggregate(self.org.anthropic_usage(day), group_by, USAGE_DIMS, sums=USAGE_SUMS)
        return _day_bucket(day, [_usage_result(row) for row in usage])


def _day_bucket(day: date, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "starting_at": f"{day.isoformat()}T00:00:00Z",
        "ending_at": f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z",
        "results": results,
    }


def _usage_result(row: AnthropicUsage) -> dict[str, Any]:
    """A messages usage row as the Admin API reference shows it (dimensions null unless grouped)."""
    return {
        "api_key_id": None,
        "workspace_id": row.workspace_id,
        "model": row.model,
        "service_tier": None,
        "context_window": None,
        "inference_geo": None,
        "speed": None,
        "uncached_input_tokens": row.uncached_input_tokens,
        "cache_creation": {
            "ephemeral_1h_input_tokens": row.cache_creation_1h_input_tokens,
            "ephemeral_5m_input_tokens": row.cache_creation_5m_input_tokens,
        },
        "cache_read_input_tokens": row.cache_read_input_tokens,
        "output_tokens": row.output_tokens,
        "server_tool_use": {"web_search_requests": 0},
    }


def _result(line: AnthropicLine) -> dict[str, Any]:
    return {
        "amount": format(line.amount_cents, "f"),
        "currency": "USD",
        "workspace_id": line.workspace_id,
        "description": line.description,
        "cost_type": line.cost_type,
        "model": line.model,
        "service_tier": line.service_tier,
        "token_type": line.token_type,
        "context_window": line.context_window,
    }
