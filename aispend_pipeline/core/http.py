"""The one place where provider HTTP calls are made: auth headers, retries, clear errors.

Every `requests`-based connector builds an `ApiClient`. It retries 408/425/429, every 5xx (Anthropic's
529 included), connection errors and timeouts, with bounded exponential backoff and jitter, honouring
`Retry-After` (seconds or an HTTP date) and `retry-after-ms`. It parses JSON with exact decimals,
counts requests for run metadata, and turns failures into errors that name the source, the retries made
and the setting to fix; a provider's error text is shortened and scrubbed, never copied verbatim.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from aispend_pipeline.core.secrets import safe_url, scrub
from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError

RETRYABLE_STATUS = frozenset({408, 425, 429})
USER_AGENT = "aispend-pipeline"
MAX_PAGES = 10_000
ERROR_TEXT_LIMIT = 160


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


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
    ) -> None:
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.credential_setting = credential_setting
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.jitter = jitter
        self.sleep = sleep
        self.request_count = 0
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json", **headers})

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET `base_url + path` and return its JSON, numbers parsed as `Decimal`/`int`."""
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
            if is_retryable(response.status_code) and attempt <= self.max_retries:
                asked = self._retry_after(response)
                self.sleep(self._backoff(attempt) if asked is None else asked)
                continue
            return response, attempt

    def _decode(self, response: requests.Response, path: str, retries: int = 0) -> Any:
        status = response.status_code
        if status in (401, 403):
            raise SourceAuthError(
                self.source,
                f"{path} answered {status} ({_error_message(response)}): the credential in "
                f"{self.credential_setting} was rejected or lacks admin rights; set a valid one",
            )
        if is_retryable(status):
            raise SourceUnavailableError(
                self.source,
                f"{path} still answered {status} after {retries} retries "
                f"({_error_message(response)}); the provider is unavailable or rate-limiting: re-run later",
            )
        if status >= 400:
            raise SourcePayloadError(self.source, f"{path} answered {status} ({_error_message(response)})")
        try:
            return json.loads(response.text, parse_float=Decimal)
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
    """`retry-after-ms`, or `Retry-After` as seconds or an HTTP date, capped at `cap`; None when absent."""
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
    return None


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
