"""The one place where provider HTTP calls are made: auth headers, retries, clear errors.

Every `requests`-based connector builds an `ApiClient`. It retries 429 (honouring `Retry-After` /
`retry-after-ms`), 5xx and connection errors with capped exponential backoff, parses JSON with
exact decimals, counts requests for run metadata, and turns failures into errors that name the
source and the setting to fix, never the credential itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests

from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
USER_AGENT = "aispend-pipeline"


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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.credential_setting = credential_setting
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.timeout_seconds = timeout_seconds
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
        shown = urlsplit(url).path
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
                        f"could not reach {self.base_url} after {attempt} attempts "
                        f"({type(exc).__name__}); check the endpoint setting and the network",
                    ) from None
                self.sleep(self._backoff(attempt))
                continue
            if response.status_code in RETRYABLE_STATUS and attempt <= self.max_retries:
                asked = self._retry_after(response)
                self.sleep(self._backoff(attempt) if asked is None else asked)
                continue
            return self._decode(response, shown), response.headers

    def _decode(self, response: requests.Response, path: str) -> Any:
        status = response.status_code
        if status in (401, 403):
            raise SourceAuthError(
                self.source,
                f"{path} answered {status} ({_error_message(response)}): the credential in "
                f"{self.credential_setting} was rejected or lacks admin rights; set a valid one",
            )
        if status == 429 or status >= 500:
            raise SourceUnavailableError(
                self.source,
                f"{path} still answered {status} after {self.max_retries} retries "
                f"({_error_message(response)}); re-run later",
            )
        if status >= 400:
            raise SourcePayloadError(self.source, f"{path} answered {status} ({_error_message(response)})")
        try:
            return json.loads(response.text, parse_float=Decimal)
        except ValueError:
            raise SourcePayloadError(self.source, f"{path} answered {status} with a body that is not JSON") from None

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)

    def _retry_after(self, response: requests.Response) -> float | None:
        """Seconds the provider asked us to wait, capped; None when it did not say."""
        for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            value = response.headers.get(header)
            if value is None:
                continue
            try:
                return min(max(float(value) * scale, 0.0), self.max_backoff_seconds)
            except ValueError:
                return None
        return None


def _error_message(response: requests.Response) -> str:
    """The provider's own error text, from the usual JSON error envelopes, shortened."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or "no body").strip()[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or error)[:200]
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])[:200]
    return str(error or body)[:200]


def iter_cursor_pages(api: ApiClient, path: str, params: Mapping[str, Any]) -> Any:
    """Yield each page's `data` list of a `{data, has_more, next_page}` endpoint (OpenAI, Anthropic)."""
    query = dict(params)
    while True:
        page = api.get_json(path, query)
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise SourcePayloadError(api.source, f"{path}: expected an object with a 'data' list")
        yield page["data"]
        if not page.get("has_more"):
            return
        if not page.get("next_page"):
            raise SourcePayloadError(api.source, f"{path}: has_more is true but next_page is empty")
        query["page"] = page["next_page"]
