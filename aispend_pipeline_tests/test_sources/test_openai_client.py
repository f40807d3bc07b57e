"""The OpenAI costs client over real HTTP: realistic flows against the simulator, edge cases hand-crafted."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from aispend_pipeline.core.days import utc_midnight
from aispend_pipeline.core.http import BucketReader, iter_daily_bucket_columns
from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError
from aispend_pipeline.simulators import RunningSimulators, start_simulators
from aispend_pipeline.simulators.paging import utc_today
from aispend_pipeline.sources.openai.client import OpenAICostLine, OpenAICostsClient
from aispend_pipeline.sources.openai.client import _Bucket as Bucket
from aispend_pipeline.sources.openai.client import _day as day_of
from aispend_pipeline.sources.openai.simulator import PATH

DAY = date(2026, 11, 1)
MIDNIGHT = int(utc_midnight(DAY).timestamp())


def totals(lines: list[OpenAICostLine]) -> dict[date, Decimal]:
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    for line in lines:
        by_day[line.usage_date] += line.amount_usd
    return dict(by_day)


def serve_bucket(httpserver: HTTPServer, results_json: str, start_time: int = MIDNIGHT) -> None:
    """One page with one bucket; results are raw JSON text so that number literals stay exactly as written."""
    body = (
        f'{{"object": "page", "has_more": false, "next_page": null, "data": [{{"object": "bucket", '
        f'"start_time": {start_time}, "end_time": {start_time + 86400}, "results": {results_json}}}]}}'
    )
    httpserver.expect_request("/v1/organization/costs").respond_with_data(body, content_type="application/json")


@pytest.fixture
def local_client(httpserver: HTTPServer, fast_http: dict[str, Any]) -> OpenAICostsClient:
    return OpenAICostsClient("sk-admin-test", httpserver.url_for("/v1"), **fast_http)


def test_sixty_days_take_one_request_and_match_the_org_exactly(
    sims: RunningSimulators, openai_client: OpenAICostsClient, last_60_days: tuple[date, date]
) -> None:
    start, end = last_60_days
    lines = openai_client.daily_costs(start, end)

    assert openai_client.request_count == 1
    assert sims.openai.request_count(PATH) == 1
    by_day = totals(lines)
    assert sorted(by_day) == [start + timedelta(days=i) for i in range(60)]
    for day, total in by_day.items():
        assert total == sims.expected_total_usd("openai", day), day
        assert sum(line.usage_date == day for line in lines) == sims.org.expected_lines("openai", day)


def test_short_pages_are_followed_to_the_end(fast_http: dict[str, Any]) -> None:
    with start_simulators(max_page_size=3) as sims:
        client = OpenAICostsClient(sims.env["OPENAI_ADMIN_KEY"], sims.env["OPENAI_BASE_URL"], **fast_http)
        end = utc_today()
        lines = client.daily_costs(end - timedelta(days=10), end)

        assert sims.openai.request_count(PATH) == 4
        assert len(totals(lines)) == 10
        assert all(total == sims.expected_total_usd("openai", day) for day, total in totals(lines).items())


def test_org_level_lines_and_quantities_come_through(
    openai_client: OpenAICostsClient, last_60_days: tuple[date, date]
) -> None:
    lines = openai_client.daily_costs(last_60_days[1] - timedelta(days=1), last_60_days[1])

    web_search = [line for line in lines if line.project_id is None]
    assert [line.line_item for line in web_search] == ["web search tool calls"]
    assert web_search[0].quantity is None and web_search[0].quantity_unit is None
    assert all(line.quantity_unit == "tokens" and line.quantity for line in lines if line.project_id)


def test_amounts_as_json_numbers_and_strings_are_both_exact(
    httpserver: HTTPServer, local_client: OpenAICostsClient
) -> None:
    serve_bucket(
        httpserver,
        '[{"amount": {"value": 12.3482, "currency": "usd"}, "line_item": "gpt-4o-2024-08-06, input",'
        ' "project_id": "proj_a", "quantity": 4939280.0, "quantity_unit": "tokens"},'
        ' {"amount": {"value": "12.50", "currency": "usd"}, "line_item": "gpt-4o-2024-08-06, output",'
        ' "project_id": "proj_a", "quantity": null, "quantity_unit": null},'
        ' {"amount": {"value": 0.100000000001, "currency": "USD"}, "line_item": "web search tool calls",'
        ' "project_id": null, "quantity": null, "quantity_unit": null}]',
    )

    lines = local_client.daily_costs(DAY, DAY + timedelta(days=1))

    assert [line.amount_usd for line in lines] == [Decimal("12.3482"), Decimal("12.50"), Decimal("0.100000000001")]
    assert all(type(line.amount_usd) is Decimal for line in lines)
    assert lines[0].quantity == Decimal("4939280") and lines[0].usage_date == DAY
    assert sum((line.amount_usd for line in lines), Decimal(0)) == Decimal("24.948200000001")


def test_query_asks_for_daily_buckets_grouped_by_project_and_line_item(
    httpserver: HTTPServer, local_client: OpenAICostsClient
) -> None:
    serve_bucket(httpserver, "[]")
    with pytest.raises(SourcePayloadError, match=f"no bucket for {DAY + timedelta(days=1)}"):
        local_client.daily_costs(DAY, DAY + timedelta(days=2))

    request, _ = httpserver.log[0]
    assert request.headers["Authorization"] == "Bearer sk-admin-test"
    assert request.args.getlist("group_by[]") == ["project_id", "line_item"]
    assert (request.args["start_time"], request.args["end_time"]) == (str(MIDNIGHT), str(MIDNIGHT + 2 * 86400))
    assert (request.args["bucket_width"], request.args["limit"]) == ("1d", "2")


def test_rejected_key_names_the_setting_and_never_the_key(sims: RunningSimulators, fast_http: dict[str, Any]) -> None:
    secret = "sk-admin-wrong-a1b2c3d4e5"
    client = OpenAICostsClient(secret, sims.env["OPENAI_BASE_URL"], **fast_http)

    with pytest.raises(SourceAuthError) as caught:
        client.daily_costs(DAY, DAY + timedelta(days=1))

    assert "OPENAI_ADMIN_KEY" in str(caught.value)
    assert secret not in str(caught.value)
    assert sims.openai.request_count(PATH) == 1, "a rejected key is not retried"


def test_429_with_retry_after_is_retried_then_succeeds(
    sims: RunningSimulators, openai_client: OpenAICostsClient, last_60_days: tuple[date, date]
) -> None:
    sims.openai.fail_next(429, headers={"Retry-After": "0"})
    day = last_60_days[1] - timedelta(days=1)

    lines = openai_client.daily_costs(day, day + timedelta(days=1))

    assert sims.openai.request_count(PATH) == 2
    assert totals(lines) == {day: sims.expected_total_usd("openai", day)}


def test_persistent_500_raises_unavailable_after_the_retries(sims: RunningSimulators) -> None:
    client = OpenAICostsClient(
        sims.env["OPENAI_ADMIN_KEY"], sims.env["OPENAI_BASE_URL"], max_retries=1, backoff_seconds=0
    )
    sims.openai.fail_next(500, times=5)

    with pytest.raises(SourceUnavailableError, match="500 after 1 retries"):
        client.daily_costs(DAY, DAY + timedelta(days=1))
    assert sims.openai.request_count(PATH) == 2


@pytest.mark.parametrize(
    ("results", "start_time", "expected"),
    [
        ('[{"amount": {"currency": "usd"}}]', MIDNIGHT, "amount.value' is missing"),
        ('[{"amount": {"value": "abc", "currency": "usd"}}]', MIDNIGHT, "amount.value': expected a decimal"),
        ('[{"amount": "abc"}]', MIDNIGHT, "field 'amount' is 'abc'"),
        ('[{"amount": {"value": 1, "currency": "eur"}}]', MIDNIGHT, "amount.currency' is 'eur'"),
        ('[{"amount": {"value": "NaN", "currency": "usd"}}]', MIDNIGHT, "expected a finite amount"),
        ("[]", MIDNIGHT + 3600, "is not a UTC midnight"),
    ],
    ids=["missing-value", "value-not-a-number", "amount-not-an-object", "not-usd", "nan", "bucket-not-at-midnight"],
)
def test_malformed_payloads_name_the_field_and_the_day(
    httpserver: HTTPServer, local_client: OpenAICostsClient, results: str, start_time: int, expected: str
) -> None:
    serve_bucket(httpserver, results, start_time)

    with pytest.raises(SourcePayloadError, match=expected) as caught:
        local_client.daily_costs(DAY, DAY + timedelta(days=1))

    assert str(caught.value).startswith(f"openai {DAY}: ")


def test_bucket_outside_the_requested_range_is_an_error(
    httpserver: HTTPServer, local_client: OpenAICostsClient
) -> None:
    serve_bucket(httpserver, "[]", MIDNIGHT - 86400)

    with pytest.raises(SourcePayloadError, match=f"not a UTC midnight within {DAY}"):
        local_client.daily_costs(DAY, DAY + timedelta(days=1))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<html>gateway</html>", "not JSON"),
        ('{"object": "page", "data": null}', "expected an object with a 'data' list"),
        (json.dumps({"data": [], "has_more": True, "next_page": None}), "has_more is true but next_page is empty"),
    ],
    ids=["not-json", "no-data-list", "has-more-without-cursor"],
)
def test_malformed_envelopes_are_payload_errors(
    httpserver: HTTPServer, local_client: OpenAICostsClient, body: str, expected: str
) -> None:
    httpserver.expect_request("/v1/organization/costs").respond_with_data(body)

    with pytest.raises(SourcePayloadError, match=expected) as caught:
        local_client.daily_costs(DAY, DAY + timedelta(days=1))

    assert "/organization/costs" in str(caught.value)


def test_clients_are_plain_modules_without_dagster_or_dataframes() -> None:
    """Connectors stay reusable outside the pipeline: importing them loads no Dagster, pandas or DuckDB."""
    import subprocess
    import sys

    code = (
        "import sys, aispend_pipeline.sources.openai.client, aispend_pipeline.sources.anthropic.client\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'pandas', 'duckdb', 'pandera'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_float_artefacts_are_rounded_half_even_and_counted_never_fatal(
    httpserver: HTTPServer, local_client: OpenAICostsClient
) -> None:
    serve_bucket(
        httpserver,
        '[{"amount": {"value": 0.30000000000000004, "currency": "usd"}, "quantity": 1.2345678901234567e-05},'
        ' {"amount": {"value": 0.5617712500000000, "currency": "usd"}}]',
    )

    lines = local_client.daily_costs(DAY, DAY + timedelta(days=1))

    assert [line.amount_usd for line in lines] == [Decimal("0.300000000000"), Decimal("0.5617712500000000")]
    assert lines[0].quantity == Decimal("0.000012345679")
    assert local_client.rounding_usd == {DAY: Decimal("-4E-17")}


def test_a_bucket_repeated_across_pages_is_counted_once(
    httpserver: HTTPServer, local_client: OpenAICostsClient
) -> None:
    bucket = {
        "object": "bucket",
        "start_time": MIDNIGHT,
        "end_time": MIDNIGHT + 86400,
        "results": [{"amount": {"value": "5.25", "currency": "usd"}, "project_id": "proj_a", "line_item": "x"}],
    }
    path = "/v1/organization/costs"
    httpserver.expect_ordered_request(path).respond_with_json(
        {"data": [bucket], "has_more": True, "next_page": "page_2"}
    )
    httpserver.expect_ordered_request(path).respond_with_json({"data": [bucket], "has_more": False, "next_page": None})

    lines = local_client.daily_costs(DAY, DAY + timedelta(days=1))

    assert totals(lines) == {DAY: Decimal("5.25")} and len(lines) == 1


def _bucket(day_offset: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    start = MIDNIGHT + 86400 * day_offset
    return {"object": "bucket", "start_time": start, "end_time": start + 86400, "results": results}


def _result(value: Any, project: str, currency: str = "usd") -> dict[str, Any]:
    return {"amount": {"value": value, "currency": currency}, "project_id": project, "line_item": "gpt-4o, input"}


def test_pages_arrive_as_bounded_column_chunks_and_odd_buckets_match_the_typed_path(
    httpserver: HTTPServer, fast_http: dict[str, Any]
) -> None:
    """Every page is decoded bucket by bucket into chunks of about `chunk_rows` rows; a bucket the typed
    decode refuses ("USD" upper case, a numeric project id) goes field by field and gives the same columns."""
    typed = [_result("1.25", f"proj_{i}") for i in range(3)]
    odd = [_result("1.25", f"proj_{i}", currency="USD") for i in range(3)]
    path = "/v1/organization/costs"
    httpserver.expect_ordered_request(path).respond_with_json(
        {"data": [_bucket(0, typed), _bucket(1, odd)], "has_more": True, "next_page": "p2"}
    )
    httpserver.expect_ordered_request(path).respond_with_json(
        {"data": [_bucket(2, typed)], "has_more": False, "next_page": None}
    )
    client = OpenAICostsClient("sk-admin-test", httpserver.url_for("/v1"), **fast_http)
    reader = BucketReader(Bucket, day_of, client._fast, client._slow)
    chunks = list(
        iter_daily_bucket_columns(client.api, "/organization/costs", {}, reader, DAY, DAY + timedelta(3), chunk_rows=2)
    )

    assert [len(c["usage_date"]) for c in chunks] == [3, 3, 3]
    by_day = [(c["usage_date"][0], c["project_id"], c["amount_usd"]) for c in chunks]
    assert by_day[0][1:] == by_day[1][1:] == by_day[2][1:] == (["proj_0", "proj_1", "proj_2"], ["1.25"] * 3)
    assert [day for day, _, _ in by_day] == [DAY, DAY + timedelta(1), DAY + timedelta(2)]


def test_a_day_repeated_away_from_a_page_boundary_is_an_error(
    httpserver: HTTPServer, local_client: OpenAICostsClient
) -> None:
    path = "/v1/organization/costs"
    first, second = _bucket(0, [_result("1", "a")]), _bucket(1, [_result("2", "a")])
    httpserver.expect_ordered_request(path).respond_with_json(
        {"data": [first, second], "has_more": True, "next_page": "p2"}
    )
    httpserver.expect_ordered_request(path).respond_with_json({"data": [first], "has_more": False, "next_page": None})

    with pytest.raises(SourcePayloadError, match=f"repeats the bucket of {DAY} away from a page boundary"):
        local_client.daily_costs(DAY, DAY + timedelta(days=2))


def test_a_boundary_bucket_repeated_with_new_results_adds_only_the_new_ones(
    httpserver: HTTPServer, local_client: OpenAICostsClient
) -> None:
    path = "/v1/organization/costs"
    httpserver.expect_ordered_request(path).respond_with_json(
        {"data": [_bucket(0, [_result("1", "a"), _result("2", "b")])], "has_more": True, "next_page": "p2"}
    )
    httpserver.expect_ordered_request(path).respond_with_json(
        {"data": [_bucket(0, [_result("2", "b"), _result("4", "c")])], "has_more": False, "next_page": None}
    )

    lines = local_client.daily_costs(DAY, DAY + timedelta(days=1))

    assert sorted((line.project_id, line.amount_usd) for line in lines) == [
        ("a", Decimal("1")),
        ("b", Decimal("2")),
        ("c", Decimal("4")),
    ]


def test_a_long_json_number_is_exact_whatever_its_digits(httpserver: HTTPServer, local_client: OpenAICostsClient):
    """Numbers are decoded as Decimal from their text: 26 significant digits survive (a double keeps 17)."""
    serve_bucket(httpserver, '[{"amount": {"value": 12345678901234.123456789012, "currency": "usd"}}]')

    (line,) = local_client.daily_costs(DAY, DAY + timedelta(days=1))

    assert line.amount_usd == Decimal("12345678901234.123456789012")
    assert local_client.rounding_usd == {}
