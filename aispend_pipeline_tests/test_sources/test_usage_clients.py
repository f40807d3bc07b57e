"""The OpenAI completions-usage and Anthropic messages-usage clients over real HTTP: the simulators for the
realistic flows (pages, retries), hand-crafted answers for the edge cases (repeated and missing buckets)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from aispend_pipeline.core.days import days_between
from aispend_pipeline.errors import SourcePayloadError
from aispend_pipeline.simulators import RunningSimulators, start_simulators
from aispend_pipeline.simulators.paging import utc_today
from aispend_pipeline.sources.anthropic.simulator import USAGE_PATH as ANTHROPIC_USAGE
from aispend_pipeline.sources.anthropic.usage import AnthropicUsageClient
from aispend_pipeline.sources.openai.simulator import USAGE_PATH as OPENAI_USAGE
from aispend_pipeline.sources.openai.usage import OpenAIUsageClient

DAY = date(2026, 11, 1)
MIDNIGHT = 1793491200  # 2026-11-01T00:00:00Z


def openai_client(sims: RunningSimulators, http: dict[str, Any]) -> OpenAIUsageClient:
    return OpenAIUsageClient(sims.env["OPENAI_ADMIN_KEY"], sims.env["OPENAI_BASE_URL"], **http)


def anthropic_client(sims: RunningSimulators, http: dict[str, Any]) -> AnthropicUsageClient:
    return AnthropicUsageClient(sims.env["ANTHROPIC_ADMIN_KEY"], sims.env["ANTHROPIC_BASE_URL"], **http)


def openai_expected(sims: RunningSimulators, start: date, end: date) -> dict[tuple, tuple]:
    return {
        (day, u.project_id, u.model): (u.input_tokens, u.input_cached_tokens, u.output_tokens)
        for day in days_between(start, end)
        for u in sims.org.openai_usage(day)
    }


def openai_served(lines: list) -> dict[tuple, tuple]:
    return {
        (x.usage_date, x.project_id, x.model): (x.input_tokens, x.input_cached_tokens, x.output_tokens) for x in lines
    }


def anthropic_expected(sims: RunningSimulators, start: date, end: date) -> dict[tuple, tuple]:
    return {
        (day, u.workspace_id, u.model): dataclasses.astuple(u)[2:]
        for day in days_between(start, end)
        for u in sims.org.anthropic_usage(day)
    }


def anthropic_served(lines: list) -> dict[tuple, tuple]:
    return {(x.usage_date, x.workspace_id, x.model): dataclasses.astuple(x)[3:-1] for x in lines}


def test_sixty_days_of_openai_usage_take_two_requests_and_match_the_org(
    sims: RunningSimulators, fast_http: dict[str, Any], last_60_days: tuple[date, date]
) -> None:
    client = openai_client(sims, fast_http)
    lines = client.daily_usage(*last_60_days)

    assert client.request_count == sims.openai.request_count(OPENAI_USAGE) == 2, "31 daily buckets a page"
    assert openai_served(lines) == openai_expected(sims, *last_60_days)
    assert all(x.input_uncached_tokens == x.input_tokens - x.input_cached_tokens for x in lines)
    assert not any(x.model.startswith("text-embedding") for x in lines), "embeddings are not completions"


def test_sixty_days_of_anthropic_usage_take_two_requests_and_match_the_org(
    sims: RunningSimulators, fast_http: dict[str, Any], last_60_days: tuple[date, date]
) -> None:
    client = anthropic_client(sims, fast_http)
    lines = client.daily_usage(*last_60_days)

    assert client.request_count == sims.anthropic.request_count(ANTHROPIC_USAGE) == 2
    assert anthropic_served(lines) == anthropic_expected(sims, *last_60_days)
    assert {x.workspace_id for x in lines} >= {None, "wrkspc_research"}, "the default workspace is null"


def test_short_pages_are_followed_to_the_end(fast_http: dict[str, Any]) -> None:
    end = utc_today()
    start = end - timedelta(days=10)
    with start_simulators(max_page_size=4, sources=["openai", "anthropic"]) as sims:
        openai_lines = openai_client(sims, fast_http).daily_usage(start, end)
        anthropic_lines = anthropic_client(sims, fast_http).daily_usage(start, end)

        assert sims.openai.request_count(OPENAI_USAGE) == sims.anthropic.request_count(ANTHROPIC_USAGE) == 3
        assert openai_served(openai_lines) == openai_expected(sims, start, end)
        assert anthropic_served(anthropic_lines) == anthropic_expected(sims, start, end)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_429_with_retry_after_is_retried_then_succeeds(
    sims: RunningSimulators, fast_http: dict[str, Any], provider: str
) -> None:
    end = utc_today()
    sim = sims[provider]
    sim.fail_next(429, headers={"Retry-After": "0"})
    client = openai_client(sims, fast_http) if provider == "openai" else anthropic_client(sims, fast_http)

    lines = client.daily_usage(end - timedelta(days=3), end)

    assert client.request_count == 2 and lines


def test_the_queries_group_by_key_and_model_in_daily_buckets(sims: RunningSimulators, httpserver: HTTPServer) -> None:
    empty = {"data": [], "has_more": False, "next_page": None}
    httpserver.expect_request("/v1/organization/usage/completions").respond_with_json(empty)
    httpserver.expect_request(ANTHROPIC_USAGE).respond_with_json(empty)
    with pytest.raises(SourcePayloadError):  # no bucket for the day: checked below
        OpenAIUsageClient("sk-admin-test", httpserver.url_for("/v1"), max_retries=0).daily_usage(
            DAY, DAY + timedelta(days=1)
        )
    with pytest.raises(SourcePayloadError):
        AnthropicUsageClient("sk-ant-admin-test", httpserver.url_for("/"), max_retries=0).daily_usage(
            DAY, DAY + timedelta(days=1)
        )

    (openai, _), (anthropic, _) = httpserver.log
    assert openai.headers["Authorization"] == "Bearer sk-admin-test"
    assert openai.args.getlist("group_by[]") == ["project_id", "model"]
    assert (openai.args["start_time"], openai.args["bucket_width"], openai.args["limit"]) == (str(MIDNIGHT), "1d", "1")
    assert anthropic.headers["x-api-key"] == "sk-ant-admin-test" and anthropic.headers["anthropic-version"]
    assert anthropic.args.getlist("group_by[]") == ["workspace_id", "model"]
    assert anthropic.args["starting_at"] == "2026-11-01T00:00:00Z" and anthropic.args["bucket_width"] == "1d"


def openai_bucket(start: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "bucket", "start_time": start, "end_time": start + 86400, "results": results}


def openai_result(**fields: Any) -> dict[str, Any]:
    base = {"object": "organization.usage.completions.result", "input_tokens": 1000, "output_tokens": 500}
    return base | {"num_model_requests": 5, "project_id": "proj_a", "model": "gpt-4o"} | fields


def anthropic_bucket(day: date, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"starting_at": f"{day}T00:00:00Z", "ending_at": f"{day + timedelta(days=1)}T00:00:00Z", "results": results}


def anthropic_result(**fields: Any) -> dict[str, Any]:
    base = {"workspace_id": None, "model": "claude-sonnet-4-5", "uncached_input_tokens": 1500}
    cache = {"cache_creation": {"ephemeral_1h_input_tokens": 1000, "ephemeral_5m_input_tokens": 500}}
    return base | cache | {"cache_read_input_tokens": 200, "output_tokens": 500} | fields


def test_a_bucket_repeated_across_pages_is_counted_once(httpserver: HTTPServer, fast_http: dict[str, Any]) -> None:
    path = "/v1/organization/usage/completions"
    bucket = openai_bucket(MIDNIGHT, [openai_result()])
    httpserver.expect_ordered_request(path).respond_with_json({"data": [bucket], "has_more": True, "next_page": "p2"})
    httpserver.expect_ordered_request(path).respond_with_json({"data": [bucket], "has_more": False, "next_page": None})
    a_bucket = anthropic_bucket(DAY, [anthropic_result()])
    httpserver.expect_ordered_request(ANTHROPIC_USAGE).respond_with_json(
        {"data": [a_bucket], "has_more": True, "next_page": "page_2"}
    )
    httpserver.expect_ordered_request(ANTHROPIC_USAGE).respond_with_json(
        {"data": [a_bucket], "has_more": False, "next_page": None}
    )

    openai = OpenAIUsageClient("k", httpserver.url_for("/v1"), **fast_http).daily_usage(DAY, DAY + timedelta(days=1))
    anthropic = AnthropicUsageClient("k", httpserver.url_for("/"), **fast_http).daily_usage(
        DAY, DAY + timedelta(days=1)
    )

    assert [(x.input_tokens, x.output_tokens) for x in openai] == [(1000, 500)]
    assert openai[0].input_cached_tokens is None, "an older answer without the cached counter"
    assert [(x.cache_creation_5m_input_tokens, x.cache_creation_1h_input_tokens) for x in anthropic] == [(500, 1000)]


def test_a_missing_day_is_an_error_not_zero_tokens(httpserver: HTTPServer, fast_http: dict[str, Any]) -> None:
    httpserver.expect_request("/v1/organization/usage/completions").respond_with_json(
        {"data": [openai_bucket(MIDNIGHT, [openai_result()])], "has_more": False, "next_page": None}
    )
    httpserver.expect_request(ANTHROPIC_USAGE).respond_with_json(
        {"data": [anthropic_bucket(DAY, [])], "has_more": False, "next_page": None}
    )
    two_days = (DAY, DAY + timedelta(days=2))

    with pytest.raises(SourcePayloadError, match="no bucket for 2026-11-02"):
        OpenAIUsageClient("k", httpserver.url_for("/v1"), **fast_http).daily_usage(*two_days)
    with pytest.raises(SourcePayloadError, match="no bucket for 2026-11-02"):
        AnthropicUsageClient("k", httpserver.url_for("/"), **fast_http).daily_usage(*two_days)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"output_tokens": None}, "field 'output_tokens' is missing"),
        ({"input_tokens": 12.5}, "field 'input_tokens' is Decimal('12.5')"),
        ({"input_cached_tokens": -3}, "field 'input_cached_tokens' is -3"),
        ({"input_tokens": "1000"}, "field 'input_tokens' is '1000'"),
    ],
    ids=["missing", "fraction", "negative", "text"],
)
def test_bad_openai_token_counts_name_the_field_and_the_day(
    httpserver: HTTPServer, fast_http: dict[str, Any], fields: dict[str, Any], message: str
) -> None:
    httpserver.expect_request("/v1/organization/usage/completions").respond_with_json(
        {"data": [openai_bucket(MIDNIGHT, [openai_result(**fields)])], "has_more": False, "next_page": None}
    )
    with pytest.raises(
        SourcePayloadError, match=r"openai 2026-11-01: " + message.replace("(", r"\(").replace(")", r"\)")
    ):
        OpenAIUsageClient("k", httpserver.url_for("/v1"), **fast_http).daily_usage(DAY, DAY + timedelta(days=1))


def test_a_bad_nested_anthropic_count_names_its_path(httpserver: HTTPServer, fast_http: dict[str, Any]) -> None:
    bad = anthropic_result(cache_creation={"ephemeral_5m_input_tokens": True})
    httpserver.expect_request(ANTHROPIC_USAGE).respond_with_json(
        {"data": [anthropic_bucket(DAY, [bad])], "has_more": False, "next_page": None}
    )
    with pytest.raises(SourcePayloadError, match=r"anthropic 2026-11-01: field 'cache_creation.ephemeral_5m_input"):
        AnthropicUsageClient("k", httpserver.url_for("/"), **fast_http).daily_usage(DAY, DAY + timedelta(days=1))
