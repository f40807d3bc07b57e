"""The Anthropic cost-report client over real HTTP: realistic flows against the simulator, edge cases hand-crafted."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError
from aispend_pipeline.simulators import RunningSimulators, start_simulators
from aispend_pipeline.simulators.paging import utc_today
from aispend_pipeline.sources.anthropic.client import AnthropicCostLine, AnthropicCostsClient
from aispend_pipeline.sources.anthropic.simulator import PATH

DAY = date(2026, 11, 1)


def totals(lines: list[AnthropicCostLine]) -> dict[date, Decimal]:
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    for line in lines:
        by_day[line.usage_date] += line.amount_usd
    return dict(by_day)


def serve_bucket(
    httpserver: HTTPServer, results: list[dict[str, Any]], starting_at: str = "2026-11-01T00:00:00Z"
) -> None:
    bucket = {"starting_at": starting_at, "ending_at": "2026-11-02T00:00:00Z", "results": results}
    httpserver.expect_request(PATH).respond_with_json({"data": [bucket], "has_more": False, "next_page": None})


def row(amount: Any, **fields: Any) -> dict[str, Any]:
    base = {"amount": amount, "currency": "USD", "workspace_id": None, "description": None, "cost_type": None}
    return base | {"model": None, "service_tier": None, "token_type": None, "context_window": None} | fields


@pytest.fixture
def local_client(httpserver: HTTPServer, fast_http: dict[str, Any]) -> AnthropicCostsClient:
    return AnthropicCostsClient("sk-ant-admin-test", httpserver.url_for("/"), **fast_http)


def test_sixty_days_take_two_requests_and_match_the_org_exactly(
    sims: RunningSimulators, anthropic_client: AnthropicCostsClient, last_60_days: tuple[date, date]
) -> None:
    start, end = last_60_days
    lines = anthropic_client.daily_costs(start, end)

    assert anthropic_client.request_count == 2
    assert sims.anthropic.request_count(PATH) == 2
    by_day = totals(lines)
    assert sorted(by_day) == [start + timedelta(days=i) for i in range(60)]
    for day, total in by_day.items():
        assert total == sims.expected_total_usd("anthropic", day), day
        assert sum(line.usage_date == day for line in lines) == sims.org.expected_lines("anthropic", day)


def test_short_pages_are_followed_to_the_end(fast_http: dict[str, Any]) -> None:
    with start_simulators(max_page_size=4) as sims:
        client = AnthropicCostsClient(sims.env["ANTHROPIC_ADMIN_KEY"], sims.env["ANTHROPIC_BASE_URL"], **fast_http)
        end = utc_today()
        lines = client.daily_costs(end - timedelta(days=10), end)

        assert sims.anthropic.request_count(PATH) == 3
        assert {day: sims.expected_total_usd("anthropic", day) for day in totals(lines)} == totals(lines)
        assert len(totals(lines)) == 10


def test_default_workspace_and_non_token_costs_come_through(
    anthropic_client: AnthropicCostsClient, last_60_days: tuple[date, date]
) -> None:
    lines = anthropic_client.daily_costs(*last_60_days)

    assert {line.workspace_id for line in lines} == {"wrkspc_research", "wrkspc_support", "wrkspc_platform", None}
    code = [line for line in lines if line.description == "Code Execution Usage"]
    assert code and all(line.cost_type == "code_execution" and line.model is None for line in code)
    assert {line.token_type for line in lines if line.cost_type == "tokens"} == {
        "uncached_input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation.ephemeral_5m_input_tokens",
    }


def test_cents_become_dollars_exactly(httpserver: HTTPServer, local_client: AnthropicCostsClient) -> None:
    serve_bucket(
        httpserver,
        [
            row("41280.000000", workspace_id="wrkspc_a", description="Claude Sonnet 4.5 Usage - Input Tokens",
                cost_type="tokens", model="claude-sonnet-4-5", service_tier="standard",
                token_type="uncached_input_tokens", context_window="0-200k"),
            row("250", description="Code Execution Usage", cost_type="code_execution"),
            row("0.000001", description="Claude Haiku 4.5 Usage - Output Tokens", cost_type="session_usage"),
        ],
    )  # fmt: skip

    lines = local_client.daily_costs(DAY, DAY + timedelta(days=1))

    assert [line.amount_usd for line in lines] == [Decimal("412.8"), Decimal("2.5"), Decimal("0.00000001")]
    assert lines[0].workspace_id == "wrkspc_a" and lines[1].workspace_id is None
    assert lines[0].token_type == "uncached_input_tokens" and lines[0].usage_date == DAY
    assert lines[2].cost_type == "session_usage", "unknown enum values are kept as text"


def test_request_carries_the_key_the_version_and_the_grouping(
    httpserver: HTTPServer, local_client: AnthropicCostsClient
) -> None:
    serve_bucket(httpserver, [])
    local_client.daily_costs(DAY, DAY + timedelta(days=1))

    request, _ = httpserver.log[0]
    assert request.headers["x-api-key"] == "sk-ant-admin-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.args.getlist("group_by[]") == ["workspace_id", "description"]
    assert (request.args["starting_at"], request.args["ending_at"]) == ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")


def test_rejected_key_names_the_setting_and_never_the_key(sims: RunningSimulators, fast_http: dict[str, Any]) -> None:
    secret = "sk-ant-admin-wrong-f00ba4"
    client = AnthropicCostsClient(secret, sims.env["ANTHROPIC_BASE_URL"], **fast_http)

    with pytest.raises(SourceAuthError) as caught:
        client.daily_costs(DAY, DAY + timedelta(days=1))

    assert "ANTHROPIC_ADMIN_KEY" in str(caught.value)
    assert secret not in str(caught.value)


def test_429_with_retry_after_is_retried_then_succeeds(
    sims: RunningSimulators, anthropic_client: AnthropicCostsClient, last_60_days: tuple[date, date]
) -> None:
    sims.anthropic.fail_next(429, headers={"retry-after": "0"})
    day = last_60_days[1] - timedelta(days=1)

    lines = anthropic_client.daily_costs(day, day + timedelta(days=1))

    assert sims.anthropic.request_count(PATH) == 2
    assert totals(lines) == {day: sims.expected_total_usd("anthropic", day)}


def test_persistent_overload_raises_unavailable_after_the_retries(sims: RunningSimulators) -> None:
    client = AnthropicCostsClient(
        sims.env["ANTHROPIC_ADMIN_KEY"], sims.env["ANTHROPIC_BASE_URL"], max_retries=1, backoff_seconds=0
    )
    sims.anthropic.fail_next(500, times=3)

    with pytest.raises(SourceUnavailableError, match="500 after 1 retries"):
        client.daily_costs(DAY, DAY + timedelta(days=1))
    assert sims.anthropic.request_count(PATH) == 2


@pytest.mark.parametrize(
    ("results", "starting_at", "expected"),
    [
        ([{"currency": "USD"}], "2026-11-01T00:00:00Z", "field 'amount' is missing"),
        ([row("abc")], "2026-11-01T00:00:00Z", "field 'amount': expected a decimal amount"),
        ([row(None)], "2026-11-01T00:00:00Z", "field 'amount': expected a decimal amount"),
        ([row("1", currency="EUR")], "2026-11-01T00:00:00Z", "field 'currency' is 'EUR'"),
        ([], "2026-11-01T06:00:00Z", "is not a UTC midnight"),
    ],
    ids=["missing-amount", "amount-not-a-number", "amount-null", "not-usd", "bucket-not-at-midnight"],
)
def test_malformed_payloads_name_the_field_and_the_day(
    httpserver: HTTPServer,
    local_client: AnthropicCostsClient,
    results: list[dict[str, Any]],
    starting_at: str,
    expected: str,
) -> None:
    serve_bucket(httpserver, results, starting_at)

    with pytest.raises(SourcePayloadError, match=expected) as caught:
        local_client.daily_costs(DAY, DAY + timedelta(days=1))
    assert str(caught.value).startswith(f"anthropic {DAY}: ")


def test_bucket_start_with_a_utc_offset_is_the_same_midnight(
    httpserver: HTTPServer, local_client: AnthropicCostsClient
) -> None:
    serve_bucket(httpserver, [row("100")], "2026-11-01T01:00:00+01:00")

    assert [line.usage_date for line in local_client.daily_costs(DAY, DAY + timedelta(days=1))] == [DAY]


def test_non_json_body_is_a_payload_error(httpserver: HTTPServer, local_client: AnthropicCostsClient) -> None:
    httpserver.expect_request(PATH).respond_with_data("upstream connect error", content_type="text/plain")

    with pytest.raises(SourcePayloadError, match=f"{PATH} answered 200 with a body that is not JSON"):
        local_client.daily_costs(DAY, DAY + timedelta(days=1))


def test_bad_request_is_reported_with_the_providers_message(
    httpserver: HTTPServer, local_client: AnthropicCostsClient
) -> None:
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "limit: must be <= 31"}}
    httpserver.expect_request(PATH).respond_with_data(json.dumps(error), status=400)

    with pytest.raises(SourcePayloadError, match="answered 400 \\(limit: must be <= 31\\)"):
        local_client.daily_costs(DAY, DAY + timedelta(days=1))


def test_cents_with_twelve_zero_decimals_are_accepted(
    httpserver: HTTPServer, local_client: AnthropicCostsClient
) -> None:
    serve_bucket(httpserver, [row("100.000000000000"), row("123.78912")])

    lines = local_client.daily_costs(DAY, DAY + timedelta(days=1))

    assert [line.amount_usd for line in lines] == [Decimal("1"), Decimal("1.2378912")]


def test_a_day_missing_from_the_answer_is_an_error_not_zero(
    httpserver: HTTPServer, local_client: AnthropicCostsClient
) -> None:
    serve_bucket(httpserver, [row("100")])

    with pytest.raises(SourcePayloadError, match="anthropic: the answer has no bucket for 2026-11-02"):
        local_client.daily_costs(DAY, DAY + timedelta(days=2))
