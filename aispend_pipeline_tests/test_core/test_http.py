"""`ApiClient` over real HTTP: retries and their waits, clear errors, exact JSON numbers, cursor pages."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest
from pytest_httpserver import HTTPServer

from aispend_pipeline.core.http import ApiClient, iter_cursor_pages
from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError


class Sleeps(list[float]):
    """Records the waits instead of sleeping them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def api(httpserver: HTTPServer, sleeps: Sleeps) -> ApiClient:
    return ApiClient(
        "acme",
        httpserver.url_for("/"),
        {"x-api-key": "k-secret"},
        "ACME_KEY",
        max_retries=3,
        backoff_seconds=0.5,
        max_backoff_seconds=10,
        sleep=sleeps,
    )


def fail_once(httpserver: HTTPServer, status: int, headers: dict[str, str] | None = None) -> None:
    httpserver.expect_oneshot_request("/thing").respond_with_data("busy", status=status, headers=headers)


@pytest.mark.parametrize(
    ("headers", "expected_wait"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "3600"}, 10.0),
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, 0.5),
        ({}, 0.5),
    ],
    ids=["seconds", "milliseconds-first", "zero-means-now", "capped", "http-date-falls-back", "no-header-backoff"],
)
def test_429_waits_as_the_provider_asks(
    httpserver: HTTPServer, api: ApiClient, sleeps: Sleeps, headers: dict[str, str], expected_wait: float
) -> None:
    fail_once(httpserver, 429, headers)
    httpserver.expect_request("/thing").respond_with_json({"ok": True})

    assert api.get_json("/thing") == {"ok": True}
    assert sleeps == [expected_wait]
    assert api.request_count == 2


def test_5xx_backs_off_exponentially_then_succeeds(httpserver: HTTPServer, api: ApiClient, sleeps: Sleeps) -> None:
    for status in (500, 502, 503):
        fail_once(httpserver, status)
    httpserver.expect_request("/thing").respond_with_json([])

    assert api.get_json("/thing") == []
    assert sleeps == [0.5, 1.0, 2.0]


def test_persistent_5xx_is_unavailable_and_says_what_to_do(
    httpserver: HTTPServer, api: ApiClient, sleeps: Sleeps
) -> None:
    httpserver.expect_request("/thing").respond_with_json({"error": {"message": "overloaded"}}, status=503)

    with pytest.raises(SourceUnavailableError) as caught:
        api.get_json("/thing")

    assert str(caught.value) == "acme: /thing still answered 503 after 3 retries (overloaded); re-run later"
    assert api.request_count == 4 and len(sleeps) == 3


def test_connection_refused_is_unavailable_with_a_clear_message(sleeps: Sleeps) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = ApiClient("acme", f"http://127.0.0.1:{port}", {}, "ACME_KEY", max_retries=2, backoff_seconds=0, sleep=sleeps)

    with pytest.raises(SourceUnavailableError) as caught:
        api.get_json("/thing")

    message = str(caught.value)
    assert message.startswith(f"acme: could not reach http://127.0.0.1:{port} after 3 attempts (ConnectionError)")
    assert "check the endpoint setting" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_name_the_setting_and_are_not_retried(
    httpserver: HTTPServer, api: ApiClient, status: int
) -> None:
    body = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    httpserver.expect_request("/thing").respond_with_json(body, status=status)

    with pytest.raises(SourceAuthError) as caught:
        api.get_json("/thing")

    assert "ACME_KEY" in str(caught.value) and "invalid x-api-key" in str(caught.value)
    assert "k-secret" not in str(caught.value)
    assert api.request_count == 1


def test_json_numbers_are_exact_decimals_and_ints(httpserver: HTTPServer, api: ApiClient) -> None:
    body = '{"price": 0.1, "tiny": 1e-7, "long": 123456789.123456789012, "count": 12, "text": "0.3"}'
    httpserver.expect_request("/thing").respond_with_data(body, content_type="application/json")

    parsed = api.get_json("/thing")

    assert parsed == {
        "price": Decimal("0.1"),
        "tiny": Decimal("1E-7"),
        "long": Decimal("123456789.123456789012"),
        "count": 12,
        "text": "0.3",
    }
    assert type(parsed["price"]) is Decimal and type(parsed["count"]) is int


def test_headers_and_query_are_sent(httpserver: HTTPServer, api: ApiClient) -> None:
    httpserver.expect_request("/thing", query_string="a=1&b%5B%5D=x&b%5B%5D=y").respond_with_json({})

    api.get_json("/thing", {"a": 1, "b[]": ["x", "y"]})

    request, _ = httpserver.log[0]
    assert request.headers["x-api-key"] == "k-secret"
    assert request.headers["User-Agent"] == "aispend-pipeline"


def test_cursor_pages_are_followed_with_the_same_query(httpserver: HTTPServer, api: ApiClient) -> None:
    httpserver.expect_ordered_request("/list", query_string="limit=2").respond_with_json(
        {"data": [1, 2], "has_more": True, "next_page": "page_b"}
    )
    httpserver.expect_ordered_request("/list", query_string="limit=2&page=page_b").respond_with_json(
        {"data": [3], "has_more": False, "next_page": None}
    )

    assert list(iter_cursor_pages(api, "/list", {"limit": 2})) == [[1, 2], [3]]


def test_400_is_a_payload_error_with_the_providers_message(httpserver: HTTPServer, api: ApiClient) -> None:
    body = {"error": {"message": "bucket_width must be 1d", "type": "invalid_request_error"}}
    httpserver.expect_request("/thing").respond_with_json(body, status=400)

    with pytest.raises(SourcePayloadError, match="acme: /thing answered 400 \\(bucket_width must be 1d\\)"):
        api.get_json("/thing")
    assert api.request_count == 1
