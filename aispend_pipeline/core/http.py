"""The one place where provider HTTP calls are made: auth headers, retries, clear errors.

Every `requests`-based connector builds an `ApiClient`. It retries 408/425/429, every 5xx (Anthropic's
529 included), a 403 that is a rate limit (GitHub: `x-ratelimit-remaining: 0` or `Retry-After`),
connection errors and timeouts, with bounded exponential backoff and jitter, honouring `Retry-After`
(seconds or an HTTP date), `retry-after-ms` and `x-ratelimit-reset` (epoch seconds). It parses JSON
with exact decimals, counts requests for run metadata, and turns failures into errors that name the
source, the retries made and the setting to fix (plus a per-status hint the connector gives); a
provider's error text is shortened and scrubbed, never copied verbatim. `iter_cursor_pages` and
`iter_link_pages` follow the two page schemes the providers use.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from aispend_pipeline.core.days import merge_daily_buckets, require_every_day
from aispend_pipeline.core.secrets import safe_url, scrub
from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 425, 429})
USER_AGENT = "aispend-pipeline"
MAX_PAGES = 10_000
ERROR_TEXT_LIMIT = 160


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


def is_rate_limited(status: int, headers: Mapping[str, str]) -> bool:
    """A 403/429 that says it is a rate limit (GitHub answers its limits with 403): retry, never an auth error."""
    if status not in (403, 429):
        return False
    return headers.get("x-ratelimit-remaining") == "0" or headers.get("retry-after") is not None


class ApiClient:
    """A `requests.Session` bound to one provider's base URL and credential headers."""

    def __init__(
        self,
        source: str,
        base_url: str,
        headers: Mapping[str, str],
        credential_setting: str,
        *,
        max_retries: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        timeout_seconds: float = 60.0,
        jitter: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        hints: Mapping[int, str] | None = None,
        parse_float: Callable[[str], Any] = Decimal,
    ) -> None:
        self.source = source
        # JSON numbers with a fraction or exponent: Decimal, or `str` to keep their text for a client that
        # turns a whole column into exact money at once (core.money.money_texts); never float.
        self.parse_float = parse_float
        self.base_url = base_url.rstrip("/")
        self.credential_setting = credential_setting
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.jitter = jitter
        self.sleep = sleep
        self.hints = dict(hints or {})  # status -> what to check, added to the message of that answer
        self.request_count = 0
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json", **headers})

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET `base_url + path` and return its JSON, numbers parsed as `Decimal`/`int` (or `parse_float`)."""
        return self.request("GET", path, params=params)[0]

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> tuple[Any, Mapping[str, str]]:
        """Call `base_url + path` (or an absolute URL the provider handed out, e.g. a `Link` header's next
        page) with retries; return the JSON body (numbers as `Decimal`/`int`) and the response headers."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        response, attempts = self.send(method, url, params=params, json_body=json_body)
        return self._decode(response, urlsplit(url).path, retries=attempts - 1), response.headers

    def send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> tuple[requests.Response, int]:
        """The shared retry loop: the last response (whatever its status) and the attempts made.

        For callers whose answer is not JSON (a webhook answers `ok`); connection failures past the
        retries raise `SourceUnavailableError`."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        attempt = 0
        while True:
            attempt += 1
            self.request_count += 1
            try:
                response = self.session.request(
                    method, url, params=params, json=json_body, timeout=self.timeout_seconds
                )
            except requests.RequestException as exc:
                if attempt > self.max_retries:
                    raise SourceUnavailableError(
                        self.source,
                        f"could not reach {safe_url(self.base_url)} after {attempt} attempts "
                        f"({type(exc).__name__}); check the endpoint setting and the network",
                    ) from None
                self.sleep(self._backoff(attempt))
                continue
            retry = is_retryable(response.status_code) or is_rate_limited(response.status_code, response.headers)
            if retry and attempt <= self.max_retries:
                asked = self._retry_after(response)
                self.sleep(self._backoff(attempt) if asked is None else asked)
                continue
            return response, attempt

    def _decode(self, response: requests.Response, path: str, retries: int = 0) -> Any:
        status = response.status_code
        hint = f"; {self.hints[status]}" if status in self.hints else ""
        if is_rate_limited(status, response.headers):
            raise SourceUnavailableError(
                self.source,
                f"{path} still answered {status} (rate limited: {_error_message(response)}) after {retries} "
                f"retries{_reset_text(response.headers)}; re-run after the limit resets{hint}",
            )
        if status in (401, 403):
            raise SourceAuthError(
                self.source,
                f"{path} answered {status} ({_error_message(response)}): the credential in "
                f"{self.credential_setting} was rejected or lacks admin rights; set a valid one{hint}",
            )
        if is_retryable(status):
            raise SourceUnavailableError(
                self.source,
                f"{path} still answered {status} after {retries} retries "
                f"({_error_message(response)}); the provider is unavailable or rate-limiting: re-run later{hint}",
            )
        if status >= 400:
            raise SourcePayloadError(self.source, f"{path} answered {status} ({_error_message(response)}){hint}")
        try:
            return json.loads(response.text, parse_float=self.parse_float)
        except ValueError:
            raise SourcePayloadError(self.source, f"{path} answered {status} with a body that is not JSON") from None

    def _backoff(self, attempt: int) -> float:
        """Exponential, capped, with jitter so that parallel clients do not retry in step."""
        wait = min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)
        return wait * (1 - self.jitter * random.random())

    def _retry_after(self, response: requests.Response) -> float | None:
        """Seconds the provider asked us to wait, capped; None when it did not say."""
        return retry_after_seconds(response.headers, self.max_backoff_seconds)


def retry_after_seconds(headers: Mapping[str, str], cap: float) -> float | None:
    """`retry-after-ms`, `Retry-After` as seconds or an HTTP date, or the `x-ratelimit-reset` epoch second
    of an exhausted limit (GitHub), capped at `cap`; None when absent."""
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            return min(max(float(value) * scale, 0.0), cap)
        except ValueError:
            pass
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return min(max((moment - datetime.now(UTC)).total_seconds(), 0.0), cap)
    reset = _reset_epoch(headers)
    if reset is not None and headers.get("x-ratelimit-remaining") == "0":
        return min(max(reset - time.time(), 0.0), cap)
    return None


def _reset_epoch(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers["x-ratelimit-reset"])
    except (KeyError, TypeError, ValueError):
        return None


def _reset_text(headers: Mapping[str, str]) -> str:
    """When an exhausted limit resets, as the provider said (x-ratelimit-reset), for the error message."""
    reset = _reset_epoch(headers)
    if reset is None or headers.get("x-ratelimit-remaining") != "0":
        return ""
    return f" (the limit resets at {datetime.fromtimestamp(reset, UTC):%Y-%m-%d %H:%M:%S} UTC)"


def _error_message(response: requests.Response) -> str:
    """The provider's own error text from the usual JSON envelopes: one line, shortened, scrubbed."""
    try:
        body = response.json()
    except ValueError:
        return short_text(response.text or response.reason or "no body")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return short_text(str(error.get("message") or error.get("type") or error.get("code") or error))
    if isinstance(body, dict) and "message" in body:
        return short_text(str(body["message"]))
    return short_text(str(error or body))


def short_text(text: str) -> str:
    """A provider's text fit for a one-line message: first line, credentials masked, bounded length."""
    lines = scrub(text).strip().splitlines() or [""]
    line = " ".join(lines[0].split())
    return line if len(line) <= ERROR_TEXT_LIMIT else line[: ERROR_TEXT_LIMIT - 3] + "..."


def iter_cursor_pages(api: ApiClient, path: str, params: Mapping[str, Any]) -> Iterator[list[Any]]:
    """Yield each page's `data` list of a `{data, has_more, next_page}` endpoint (OpenAI, Anthropic).

    A cursor handed out twice, or `has_more` past `MAX_PAGES`, is an error: never an endless loop.
    """
    query = dict(params)
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page = api.get_json(path, query)
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise SourcePayloadError(api.source, f"{path}: expected an object with a 'data' list")
        yield page["data"]
        if not page.get("has_more"):
            return
        cursor = page.get("next_page")
        if not cursor:
            raise SourcePayloadError(api.source, f"{path}: has_more is true but next_page is empty")
        if cursor in seen:
            raise SourcePayloadError(
                api.source, f"{path}: the API handed out the same next_page cursor twice; stopped paging"
            )
        seen.add(str(cursor))
        query["page"] = cursor
    raise SourcePayloadError(api.source, f"{path}: has_more stayed true for {MAX_PAGES} pages; stopped paging")


def iter_link_pages(api: ApiClient, path: str, params: Mapping[str, Any]) -> Iterator[Any]:
    """Yield each page's JSON of an endpoint paged by the `Link` header (RFC 8288, GitHub's REST API).

    The `rel="next"` URL is followed verbatim (it may name another path, e.g. GitHub's
    `/organizations/{id}/...`), until a page has none. A next URL handed out twice, or more than
    `MAX_PAGES` pages, is an error: never an endless loop.
    """
    url: str = path
    query: Mapping[str, Any] | None = params
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        body, headers = api.request("GET", url, params=query)
        yield body
        links = requests.utils.parse_header_links(headers.get("Link") or "")
        following = next((link.get("url") for link in links if link.get("rel") == "next"), None)
        if not following:
            return
        if following in seen:
            raise SourcePayloadError(api.source, f"{path}: the Link header named the same next page twice; stopped")
        seen.add(following)
        url, query = following, None
    raise SourcePayloadError(api.source, f"{path}: more than {MAX_PAGES} pages; stopped paging")


def fetch_daily_buckets(
    api: ApiClient,
    path: str,
    params: Mapping[str, Any],
    day_of: Callable[[Any, date, date], date],
    start: date,
    end: date,
    build: Callable[[list[tuple[date, list[Any]]]], T],
) -> T:
    """The daily buckets of every page of [start, end) (OpenAI, Anthropic), built by `build` day by day.

    A bucket repeated across pages is merged, never counted twice; after building (so a bad field is
    named first), every day must have had its bucket: a missing day is an error, never a silent $0.
    """
    buckets = (
        (day_of(bucket, start, end), bucket.get("results") or [])
        for page in iter_cursor_pages(api, path, params)
        for bucket in page
    )
    merged = merge_daily_buckets(api.source, buckets, start, end)
    built = build(sorted(merged.items()))
    require_every_day(api.source, merged, start, end)
    return built
