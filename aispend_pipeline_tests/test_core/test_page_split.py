"""A page body split into its `data` elements as it arrives: the same elements and envelope as decoding the
whole body, whatever the block size; malformed bodies rejected; the first bucket handed on before the body
has arrived (a year of OpenAI's pages was held whole: 544 MB per page at full size)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import msgspec
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from aispend_pipeline.core.http import BODY_READ_BYTES, ApiClient, iter_cursor_pages
from aispend_pipeline.core.page_split import PREFIX_SEARCH_BYTES, MalformedPage, PageSplitter
from aispend_pipeline.errors import SourcePayloadError, SourceUnavailableError

BUCKET = {"object": "bucket", "start_time": 1, "results": [{"amount": {"value": 0.5}, "line_item": "a"}]}
TRICKY = [  # strings that hold brackets, quotes and backslashes, as a project or line item name may
    {"line_item": 'gpt-4o "[batch]" {x}', "path": "C:\\temp\\", "q": '\\"}]', "u": "é ✓ \u2028"},
    {"nested": [[{"a": []}], {"b": {"c": "]]]}}}"}}], "n": -1.5e3},
    [1, {"in": "a list"}],
    {},
]


def split(body: bytes, block: int) -> tuple[list[bytes], bytes]:
    splitter = PageSplitter()
    elements = [bytes(e) for e in splitter.elements(body[i : i + block] for i in range(0, len(body), block))]
    return elements, splitter.envelope()


def bodies() -> list[bytes]:
    data = [BUCKET, *TRICKY, BUCKET]
    return [
        json.dumps({"object": "page", "data": data, "has_more": True, "next_page": "p]2"}).encode(),
        json.dumps({"data": data, "has_more": False}, indent=2, ensure_ascii=False).encode(),
        json.dumps({"data": [], "next_page": None}).encode(),
        json.dumps({"has_more": False, "data": [1, "two", None, {"3": 3}, 4.5, [], "[{"]}).encode(),
        json.dumps({"x": {"data": [9]}, "data": [BUCKET], "y": [[]]}).encode(),  # a nested "data" first
        json.dumps({"data": [BUCKET, "\\", '\\"', "\\\\"]}).encode(),
    ]


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("body", bodies(), ids=["compact", "pretty", "empty", "scalars", "nested-key", "escapes"])
def test_the_split_gives_the_whole_decode_s_elements_and_envelope(body: bytes, block: int) -> None:
    whole = msgspec.json.decode(body)

    elements, envelope = split(body, block)

    decoded = msgspec.json.decode(envelope)
    assert [msgspec.json.decode(e) for e in elements] + decoded.pop("data") == whole.pop("data")
    assert decoded == whole


@pytest.mark.parametrize("block", [1, 5, 1 << 20])
@pytest.mark.parametrize(
    "body",
    [
        b'{"data": [{"a": 1},]}',  # trailing comma
        b'{"data": [{"a": 1} {"b": 2}]}',  # a missing comma
        b'{"data": [{"a": 1], "b": 2}]}',  # brackets that do not pair
        b'{"data": [{"a": "x\\"}]}',  # an escaped quote leaves the string open
        b'{"data": [{"a": 1}, {"b": 2',  # cut off inside a bucket
        b'{"data": [{"a": 1}, {"b": 2}]',  # cut off after the list
        b'{"data": [{"a": 1}]} trailing',
        b'{"data": [1 2]}',
    ],
)
def test_a_malformed_body_is_rejected_as_the_whole_decode_rejects_it(body: bytes, block: int) -> None:
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(body)

    with pytest.raises((MalformedPage, msgspec.DecodeError)):
        msgspec.json.decode(split(body, block)[1])


@pytest.mark.parametrize(
    "body",
    [
        b"<html>bad gateway</html>",
        b'{"object": "page", "data": null}',
        b'{"meta": {"data": [1]}}',
        json.dumps({"note": "x" * PREFIX_SEARCH_BYTES, "data": [BUCKET]}).encode(),  # "data" after 64 KB
        b"",
    ],
    ids=["html", "null-data", "nested-only", "data-late", "empty-body"],
)
def test_a_body_of_another_shape_is_kept_whole_for_the_whole_decode(body: bytes) -> None:
    elements, envelope = split(body, 1000)

    assert elements == [] and envelope == body


def test_each_element_is_handed_on_once_its_blocks_have_arrived() -> None:
    buckets = [{"day": n, "results": ["x" * 5000]} for n in range(20)]
    body = json.dumps({"object": "page", "data": buckets, "has_more": False}).encode()
    read: list[int] = []

    def blocks() -> Iterator[bytes]:
        for i in range(0, len(body), 1000):
            read.append(i + 1000)
            yield body[i : i + 1000]

    splitter = PageSplitter()
    for n, element in enumerate(splitter.elements(blocks())):
        ends_at = body.index(json.dumps(buckets[n]).encode()) + len(element)
        assert ends_at <= read[-1] < ends_at + 1000  # no more than one block past the bucket's end
        assert msgspec.json.decode(element) == buckets[n]


# --- over HTTP


def test_the_first_bucket_arrives_while_the_server_still_holds_the_rest(httpserver: HTTPServer) -> None:
    """Regression: the whole page body was read before its first bucket was decoded."""
    handed_on = threading.Event()
    waited: list[bool] = []
    big = {**BUCKET, "results": [{"line_item": "x" * 1000, "n": n} for n in range(1500)]}  # 1.5 MB
    head = b'{"object": "page", "data": [' + json.dumps(big).encode()
    head += b" " * (2 * BODY_READ_BYTES - len(head))  # two whole blocks: a read waits for a whole block

    def body() -> Iterator[bytes]:
        yield head
        waited.append(handed_on.wait(timeout=10))  # the rest only once the client has the first bucket
        yield b', {"object": "bucket", "start_time": 2, "results": []}], "has_more": false, "next_page": null}'

    httpserver.expect_request("/costs").respond_with_response(Response(body(), content_type="application/json"))
    api = ApiClient("acme", httpserver.url_for("/"), {}, "ACME_KEY")

    for page in iter_cursor_pages(api, "/costs", {}):
        first = next(page)
        handed_on.set()
        rest = list(page)

    assert msgspec.json.decode(first) == big and len(rest) == 1
    assert waited == [True]


def test_a_page_the_caller_leaves_unread_is_still_followed_by_its_cursor(httpserver: HTTPServer) -> None:
    pages = [{"data": [BUCKET, BUCKET], "has_more": True, "next_page": "b"}, {"data": [BUCKET], "has_more": False}]
    httpserver.expect_ordered_request("/costs", query_string="").respond_with_json(pages[0])
    httpserver.expect_ordered_request("/costs", query_string="page=b").respond_with_json(pages[1])
    api = ApiClient("acme", httpserver.url_for("/"), {}, "ACME_KEY")

    firsts = [msgspec.json.decode(next(page)) for page in iter_cursor_pages(api, "/costs", {})]

    assert firsts == [BUCKET, BUCKET] and api.request_count == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"data": [{"a": 1}, {"b": 2', "answered 200 with a body that is not JSON"),
        (b'{"data": [{"a": 1}], "has_more": "yes"}', "expected an object with a 'data' list"),
    ],
)
def test_a_bad_streamed_page_names_the_problem(httpserver: HTTPServer, body: bytes, message: str) -> None:
    httpserver.expect_request("/costs").respond_with_data(body, content_type="application/json")
    api = ApiClient("acme", httpserver.url_for("/"), {}, "ACME_KEY")

    with pytest.raises(SourcePayloadError, match=message):
        for page in iter_cursor_pages(api, "/costs", {}):
            list(page)


def test_a_connection_that_breaks_inside_the_body_is_an_unavailable_error() -> None:
    """The server promises 10,000 bytes and closes after 30: the message says to re-run, never a raw traceback."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n")
        connection.sendall(b'{"data": [{"a": 1}, {"b": 2}, ')
        connection.close()

    threading.Thread(target=serve, daemon=True).start()
    api = ApiClient("acme", f"http://127.0.0.1:{listener.getsockname()[1]}", {}, "ACME_KEY", max_retries=0)

    with pytest.raises(SourceUnavailableError, match="acme: /costs: the connection broke while its answer was read"):
        for page in iter_cursor_pages(api, "/costs", {}):
            list(page)
    listener.close()
