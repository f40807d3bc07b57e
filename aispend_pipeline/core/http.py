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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pyarrow as pa
import requests

from aispend_pipeline.core.columnar import ColumnarReader, Unusual, batch_table, read_batch
from aispend_pipeline.core.days import require_every_day
from aispend_pipeline.core.decoding import PayloadStruct
from aispend_pipeline.core.page_split import MalformedPage, PageSplitter
from aispend_pipeline.core.secrets import safe_url, scrub
from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError

RETRYABLE_STATUS = frozenset({408, 425, 429})
USER_AGENT = "aispend-pipeline"
MAX_PAGES = 10_000
ERROR_TEXT_LIMIT = 160
BODY_READ_BYTES = 1 << 20


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

    def get_blocks(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[bytes]:
        """GET `base_url + path` with retries and the same error handling, and yield the body block by block
        as it arrives (for pages split as they arrive, see `iter_cursor_pages`); the connection is released
        when the body is read or the caller stops."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        response, attempts = self.send("GET", url, params=params, stream=True)
        try:
            self._check(response, urlsplit(url).path, retries=attempts - 1)
            yield from response.iter_content(BODY_READ_BYTES)
        except requests.RequestException as exc:
            raise SourceUnavailableError(
                self.source,
                f"{urlsplit(url).path}: the connection broke while its answer was read ({type(exc).__name__}); "
                "re-run the partition",
            ) from None
        finally:
            response.close()

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
        stream: bool = False,
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
                    method, url, params=params, json=json_body, timeout=self.timeout_seconds, stream=stream
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
                response.close()  # a streamed answer's connection goes back to the pool unread
                self.sleep(self._backoff(attempt) if asked is None else asked)
                continue
            return response, attempt

    def _decode(self, response: requests.Response, path: str, retries: int = 0) -> Any:
        self._check(response, path, retries)
        try:
            return json.loads(response.text, parse_float=self.parse_float)
        except ValueError:
            raise SourcePayloadError(
                self.source, f"{path} answered {response.status_code} with a body that is not JSON"
            ) from None

    def _check(self, response: requests.Response, path: str, retries: int = 0) -> None:
        """Raise the error a failed answer means (auth, rate limit, unavailable, other 4xx); pass a success."""
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


class _CursorPage(PayloadStruct):
    """A `{data, has_more, next_page}` page; `data` elements stay undecoded bytes (`msgspec.Raw`)."""

    data: list[msgspec.Raw]
    has_more: bool | None = None
    next_page: Any = None


_PAGE_DECODER = msgspec.json.Decoder(_CursorPage)


def iter_cursor_pages(api: ApiClient, path: str, params: Mapping[str, Any]) -> Iterator[Iterator[msgspec.Raw | bytes]]:
    """Yield each page of a `{data, has_more, next_page}` endpoint (OpenAI, Anthropic) as an iterator of its
    `data` elements, undecoded, handed on as the body arrives (`core.page_split`): only one element and one
    block of the body are in memory, and the caller decodes each element into typed records. The next page
    is asked for once this one is read to its end (its cursor comes after its data).

    A cursor handed out twice, or `has_more` past `MAX_PAGES`, is an error: never an endless loop.
    """
    query = dict(params)
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        cursor: list[Any] = []
        elements = _page_elements(api, path, query, cursor)
        yield elements
        for _ in elements:  # what the caller left unread, to reach the cursor
            pass
        more, following = cursor
        if not more:
            return
        if not following:
            raise SourcePayloadError(api.source, f"{path}: has_more is true but next_page is empty")
        if following in seen:
            raise SourcePayloadError(
                api.source, f"{path}: the API handed out the same next_page cursor twice; stopped paging"
            )
        seen.add(str(following))
        query["page"] = following
    raise SourcePayloadError(api.source, f"{path}: has_more stayed true for {MAX_PAGES} pages; stopped paging")


def _page_elements(
    api: ApiClient, path: str, query: Mapping[str, Any], cursor: list[Any]
) -> Iterator[msgspec.Raw | bytes]:
    """One page's `data` elements, then its `has_more` and `next_page` put into `cursor`."""
    splitter = PageSplitter()
    shown = urlsplit(api.base_url + path).path
    try:
        yield from splitter.elements(api.get_blocks(path, query))
        page = _PAGE_DECODER.decode(splitter.envelope())
    except msgspec.ValidationError:
        raise SourcePayloadError(api.source, f"{path}: expected an object with a 'data' list") from None
    except (MalformedPage, msgspec.DecodeError):
        raise SourcePayloadError(api.source, f"{shown} answered 200 with a body that is not JSON") from None
    yield from page.data  # all of them when the body was not split (see `core.page_split`), else none
    cursor[:] = [page.has_more, page.next_page]


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


Columns = dict[str, list[Any]]
GENERIC_DECODER = msgspec.json.Decoder(float_hook=Decimal)  # JSON numbers with a fraction: exact Decimal


@dataclass(frozen=True)
class BucketReader:
    """How one endpoint's daily buckets become columns (named like its raw table's).

    `bucket_type` is a `msgspec.Struct` with the bucket's time field and `results: list[<result Struct>]`;
    `fast(day, results)` turns well-formed typed results into columns, or returns None when anything
    looks unusual (a missing field, another currency, a negative count). Then, and when the typed decode
    fails, the bucket is decoded into plain dicts and `slow(day, results)` runs the field-by-field checks
    that name the exact problem (or accept what the typed form was too strict for). `day_of(bucket)`
    reads a bucket's UTC day from a dict of its fields. With `columnar`, a page is first read as Arrow
    columns a batch of buckets at a time (`core.columnar`: no Python object per line); from the first batch
    that path finds unusual on, the page is read bucket by bucket as above.
    """

    bucket_type: type[msgspec.Struct]
    day_of: Callable[[Mapping[str, Any], date, date], date]
    fast: Callable[[date, list[Any]], Columns | None]
    slow: Callable[[date, list[dict[str, Any]]], Columns]
    columnar: ColumnarReader | None = None


Chunk = Columns | pa.Table


def chunk_columns(chunk: Chunk) -> Columns:
    """A chunk as columns of Python values (for the record views of a pull; the pipeline stages chunks as they are)."""
    return chunk.to_pydict() if isinstance(chunk, pa.Table) else chunk


def iter_daily_bucket_columns(
    api: ApiClient,
    path: str,
    params: Mapping[str, Any],
    reader: BucketReader,
    start: date,
    end: date,
    chunk_rows: int = 50_000,
) -> Iterator[Chunk]:
    """The results of every daily bucket of [start, end) as chunks of about `chunk_rows` rows (columns, or
    Arrow tables from the columnar path), bucket by bucket as the pages arrive (OpenAI, Anthropic): only a
    batch of buckets is in memory at a time, and no dict per line.

    A bucket repeated at a page boundary (the previous page's last day again) adds only results not seen
    on the earlier page, so nothing is counted twice; a day repeated anywhere else is an error. After the
    last page (so a bad field is named first), every day must have had its bucket: a missing day is an
    error, never a silent $0.
    """
    typed = msgspec.json.Decoder(reader.bucket_type)
    seen: set[date] = set()
    boundary: tuple[date, list[bytes]] | None = None  # the previous page's last day, its buckets
    pending: Columns = {}
    for page in iter_cursor_pages(api, path, params):
        buckets = _Unread(page)
        last: tuple[date, list[Buffer]] | None = None
        for days, table, group in _columnar_batches(buckets, reader, start, end, seen):
            if pending:
                yield pending
                pending = {}
            seen.update(days)
            last = (days[-1], [group[-1]])
            if table is not None:
                yield table
        raw: Buffer | None = None
        for raw in buckets:  # the rest, bucket by bucket (all of it without a columnar reader)
            day, columns = _bucket_columns(api.source, raw, typed, reader, start, end)
            if day in seen:
                if boundary is None or boundary[0] != day:
                    raise SourcePayloadError(
                        api.source, f"{path}: the answer repeats the bucket of {day} away from a page boundary", day
                    )
                known = [_bucket_columns(api.source, b, typed, reader, start, end)[1] for b in boundary[1]]
                columns = _without_rows(columns, {row for c in known for row in zip(*c.values(), strict=True)})
            seen.add(day)
            last = (day, [raw]) if last is None or last[0] != day else (day, [*last[1], raw])
            pending = _joined(pending, columns)
            if pending and len(next(iter(pending.values()))) >= chunk_rows:
                yield pending
                pending = {}
        if last is not None:
            earlier = boundary[1] if boundary and boundary[0] == last[0] else []
            boundary = (last[0], [*earlier, *map(bytes, last[1])])
        del raw, last
    if pending:
        yield pending
    require_every_day(api.source, seen, start, end)


Buffer = msgspec.Raw | bytes  # one bucket's JSON


class _Unread:
    """A page's buckets, with those the columnar path read but did not take given back (`unread`)."""

    def __init__(self, buckets: Iterator[Buffer]) -> None:
        self._buckets = buckets
        self._back: list[Buffer] = []

    def __iter__(self) -> _Unread:
        return self

    def __next__(self) -> Buffer:
        return self._back.pop() if self._back else next(self._buckets)

    def unread(self, buckets: list[Buffer]) -> None:
        self._back.extend(reversed(buckets))


def _columnar_batches(
    buckets: _Unread, reader: BucketReader, start: date, end: date, seen: set[date]
) -> Iterator[tuple[list[date], pa.Table | None, list[Buffer]]]:
    """The page's buckets read as Arrow columns, a batch of about `block_bytes` of JSON at a time: (their
    days, their rows or None when they have none, their buckets). Stops at the first batch with anything
    unusual (or a day seen before, e.g. at a page boundary), giving its buckets back: the caller reads the
    page's remaining buckets one by one, which names any problem. A batch's rounding is counted once its
    rows are handed on, so nothing is counted twice."""
    columnar = reader.columnar
    if columnar is None:
        return
    for group in _groups(buckets, columnar.block_bytes):
        rounding: dict[date, Decimal] = {}
        try:
            batch = read_batch(group, columnar)
            times = batch.column(columnar.time_field).to_pylist()
            if None in times:
                raise Unusual
            days = [reader.day_of({columnar.time_field: t}, start, end) for t in times]
            if len(set(days)) != len(days) or not seen.isdisjoint(days):
                raise Unusual
            table = batch_table(batch, days, columnar, rounding)
        except Unusual:
            buckets.unread(group)
            return
        if columnar.rounding_usd is not None:
            for day, rounded in rounding.items():
                columnar.rounding_usd[day] = columnar.rounding_usd.get(day, Decimal(0)) + rounded
        yield days, table, group


def _groups(buckets: _Unread, limit: int) -> Iterator[list[Buffer]]:
    """Buckets in groups of at most `limit` bytes of JSON (at least one bucket each). The bucket that would
    overflow a group is given back before the group is handed on, so a caller that stops loses none."""
    group: list[Buffer] = []
    size = 0
    for raw in buckets:
        if group and size + len(raw) > limit:
            buckets.unread([raw])
            yield group
            group, size = [], 0
            continue
        group.append(raw)
        size += len(raw)
    if group:
        yield group


def _bucket_columns(
    source: str, raw: Buffer, typed: msgspec.json.Decoder, reader: BucketReader, start: date, end: date
) -> tuple[date, Columns]:
    try:
        bucket = typed.decode(raw)
    except msgspec.ValidationError:
        bucket = None
    if bucket is not None:
        fields = {name: getattr(bucket, name) for name in bucket.__struct_fields__ if name != "results"}
        day = reader.day_of(fields, start, end)
        columns = reader.fast(day, bucket.results or [])  # type: ignore[attr-defined]
        if columns is not None:
            return day, columns
    generic = GENERIC_DECODER.decode(raw)
    if not isinstance(generic, dict):
        raise SourcePayloadError(source, f"a bucket is {type(generic).__name__}, expected an object")
    day = reader.day_of(generic, start, end)
    results = generic.get("results") or []
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise SourcePayloadError(source, "field 'results' of a bucket is not a list of objects", day)
    return day, reader.slow(day, results)


def _joined(first: Columns, second: Columns) -> Columns:
    """`first` extended by `second` (a new dict when `first` is empty, so `second` is never extended)."""
    if not first:
        return {name: list(values) for name, values in second.items()}
    for name, values in second.items():
        first[name].extend(values)
    return first


def _without_rows(columns: Columns, known: set[tuple[Any, ...]]) -> Columns:
    """The rows of `columns` not in `known` (rows as tuples of their values)."""
    names = list(columns)
    keep = [row for row in zip(*columns.values(), strict=True) if row not in known]
    return {name: [row[i] for row in keep] for i, name in enumerate(names)}
