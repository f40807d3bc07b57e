"""`ApiClient` over real HTTP: retries and their waits, clear errors, exact JSON numbers, cursor pages."""

from __future__ import annotations

import socket
import time
from decimal import Decimal

import msgspec
import pytest
from pytest_httpserver import HTTPServer

from aispend_pipeline.core.http import ApiClient, iter_cursor_pages, iter_link_pages
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
        jitter=0,
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
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, 0.0),
        ({}, 0.5),
    ],
    ids=["seconds", "milliseconds-first", "zero-means-now", "capped", "http-date-in-the-past", "no-header-backoff"],
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

    assert str(caught.value) == (
        "acme: /thing still answered 503 after 3 retries (overloaded); "
        "the provider is unavailable or rate-limiting: re-run later"
    )
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

    pages = [[msgspec.json.decode(raw) for raw in page] for page in iter_cursor_pages(api, "/list", {"limit": 2})]

    assert pages == [[1, 2], [3]]


def test_400_is_a_payload_error_with_the_providers_message(httpserver: HTTPServer, api: ApiClient) -> None:
    body = {"error": {"message": "bucket_width must be 1d", "type": "invalid_request_error"}}
    httpserver.expect_request("/thing").respond_with_json(body, status=400)

    with pytest.raises(SourcePayloadError, match="acme: /thing answered 400 \\(bucket_width must be 1d\\)"):
        api.get_json("/thing")
    assert api.request_count == 1


# --- faults of the operations issue: each failed on the previous main


def test_anthropic_529_overloaded_is_retried_and_the_message_counts_retries_made(
    httpserver: HTTPServer, api: ApiClient, sleeps: Sleeps
) -> None:
    fail_once(httpserver, 529)
    httpserver.expect_request("/thing").respond_with_json({"ok": True})
    assert api.get_json("/thing") == {"ok": True}
    assert sleeps == [0.5]

    httpserver.clear()
    fail_once(httpserver, 429, {"Retry-After": "0"})
    httpserver.expect_request("/thing").respond_with_json({"type": "error"}, status=401)
    with pytest.raises(SourceAuthError):
        api.get_json("/thing")


def test_persistent_529_reports_the_retries_actually_made(httpserver: HTTPServer, sleeps: Sleeps) -> None:
    httpserver.expect_request("/thing").respond_with_json({"error": {"message": "Overloaded"}}, status=529)
    api = ApiClient("anthropic", httpserver.url_for("/"), {}, "K", max_retries=2, backoff_seconds=0, sleep=sleeps)

    with pytest.raises(SourceUnavailableError, match="still answered 529 after 2 retries"):
        api.get_json("/thing")
    assert api.request_count == 3


def test_retry_after_as_a_future_http_date_is_honoured(httpserver: HTTPServer, api: ApiClient, sleeps: Sleeps) -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    when = format_datetime(datetime.now(UTC) + timedelta(seconds=6), usegmt=True)
    fail_once(httpserver, 429, {"Retry-After": when})
    httpserver.expect_request("/thing").respond_with_json({})

    api.get_json("/thing")
    assert len(sleeps) == 1 and 4.0 <= sleeps[0] <= 6.0


def test_backoff_has_jitter_and_stays_bounded(httpserver: HTTPServer, sleeps: Sleeps) -> None:
    httpserver.expect_request("/thing").respond_with_data("busy", status=503)
    api = ApiClient("acme", httpserver.url_for("/"), {}, "K", max_retries=6, backoff_seconds=1, max_backoff_seconds=4)
    api.sleep = sleeps

    with pytest.raises(SourceUnavailableError):
        api.get_json("/thing")
    assert len(sleeps) == 6 and all(0 < wait <= 4 for wait in sleeps)
    assert len(set(sleeps)) > 1


def test_a_repeated_cursor_is_an_error_naming_the_source(httpserver: HTTPServer, api: ApiClient) -> None:
    httpserver.expect_request("/list").respond_with_json({"data": [1], "has_more": True, "next_page": "same"})

    with pytest.raises(SourcePayloadError, match="acme: /list: the API handed out the same next_page cursor twice"):
        list(iter_cursor_pages(api, "/list", {}))
    assert api.request_count == 2


def test_an_echoed_key_and_a_url_password_never_reach_the_message(
    httpserver: HTTPServer, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_ADMIN_KEY", "sk-acme-0123456789")
    body = {"error": {"message": "proxy says: bad key sk-acme-0123456789 for Bearer sk-acme-0123456789\nline two"}}
    httpserver.expect_request("/thing").respond_with_json(body, status=401)
    url = httpserver.url_for("/").replace("http://", "http://user:hunter22@")
    api = ApiClient("acme", url, {"Authorization": "Bearer sk-acme-0123456789"}, "ACME_ADMIN_KEY", sleep=sleeps)

    with pytest.raises(SourceAuthError) as caught:
        api.get_json("/thing")
    assert "sk-acme-0123456789" not in str(caught.value) and "line two" not in str(caught.value)
    assert "ACME_ADMIN_KEY" in str(caught.value)

    refused = ApiClient("acme", "http://user:hunter22@127.0.0.1:9", {}, "K", max_retries=0, sleep=sleeps)
    with pytest.raises(SourceUnavailableError) as unreachable:
        refused.get_json("/thing")
    assert "hunter22" not in str(unreachable.value) and "http://***@127.0.0.1:9" in str(unreachable.value)


# ---------------------------------------------------------------- rate limits answered with 403 (GitHub)


def test_a_403_with_an_exhausted_limit_waits_until_the_reset_and_is_not_an_auth_error(
    httpserver: HTTPServer, api: ApiClient, sleeps: Sleeps
) -> None:
    reset = int(time.time()) + 5
    fail_once(httpserver, 403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    httpserver.expect_request("/thing").respond_with_json({"ok": True})

    assert api.get_json("/thing") == {"ok": True}
    assert len(sleeps) == 1 and 3 < sleeps[0] <= 5, "until x-ratelimit-reset, not the plain backoff"


def test_a_secondary_rate_limit_403_honours_retry_after(httpserver: HTTPServer, api: ApiClient, sleeps: Sleeps) -> None:
    fail_once(httpserver, 403, {"Retry-After": "3"})
    httpserver.expect_request("/thing").respond_with_json([])

    assert api.get_json("/thing") == []
    assert sleeps == [3.0]


def test_a_persistent_rate_limit_is_unavailable_and_says_when_it_resets(
    httpserver: HTTPServer, api: ApiClient, sleeps: Sleeps
) -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1796212800"}  # 2026-12-02 12:00:00 UTC
    httpserver.expect_request("/thing").respond_with_json({"message": "API rate limit exceeded"}, 403, headers)

    with pytest.raises(SourceUnavailableError) as caught:
        api.get_json("/thing")

    assert str(caught.value) == (
        "acme: /thing still answered 403 (rate limited: API rate limit exceeded) after 3 retries "
        "(the limit resets at 2026-12-02 12:00:00 UTC); re-run after the limit resets"
    )
    assert api.request_count == 4


def test_a_403_without_rate_limit_headers_stays_an_auth_error(httpserver: HTTPServer, api: ApiClient) -> None:
    headers = {"x-ratelimit-remaining": "4999", "x-ratelimit-reset": "1796212800"}
    httpserver.expect_request("/thing").respond_with_json({"message": "Must have admin rights"}, 403, headers)

    with pytest.raises(SourceAuthError, match="Must have admin rights"):
        api.get_json("/thing")
    assert api.request_count == 1


def test_a_hint_for_a_status_is_added_to_its_message(httpserver: HTTPServer, sleeps: Sleeps) -> None:
    api = ApiClient("acme", httpserver.url_for("/"), {}, "ACME_KEY", hints={404: "check ACME_ORG"}, sleep=sleeps)
    httpserver.expect_request("/thing").respond_with_json({"message": "Not Found"}, status=404)

    with pytest.raises(SourcePayloadError) as caught:
        api.get_json("/thing")
    assert str(caught.value) == "acme: /thing answered 404 (Not Found); check ACME_ORG"


# ---------------------------------------------------------------- Link header pages


def test_link_pages_follow_the_next_url_verbatim_until_there_is_none(httpserver: HTTPServer, api: ApiClient) -> None:
    second = httpserver.url_for("/organizations/7/items?per_page=2&page=2")
    first_link = f'<{second}>; rel="next", <{second}>; rel="last"'
    httpserver.expect_ordered_request("/orgs/acme/items", query_string="per_page=2").respond_with_json(
        {"items": [1, 2]}, headers={"Link": first_link}
    )
    back = httpserver.url_for("/organizations/7/items?per_page=2&page=1")
    httpserver.expect_ordered_request("/organizations/7/items", query_string="per_page=2&page=2").respond_with_json(
        {"items": [3]}, headers={"Link": f'<{back}>; rel="prev", <{back}>; rel="first"'}
    )

    assert [page["items"] for page in iter_link_pages(api, "/orgs/acme/items", {"per_page": 2})] == [[1, 2], [3]]
    assert api.request_count == 2


def test_a_link_header_naming_the_same_next_page_twice_is_an_error(httpserver: HTTPServer, api: ApiClient) -> None:
    same = httpserver.url_for("/items?page=2")
    httpserver.expect_request("/items").respond_with_json([], headers={"Link": f'<{same}>; rel="next"'})

    with pytest.raises(SourcePayloadError, match="acme: /items: the Link header named the same next page twice"):
        list(iter_link_pages(api, "/items", {}))
    assert api.request_count == 2
