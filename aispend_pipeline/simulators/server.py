"""A tiny threaded JSON server on 127.0.0.1 that the provider simulators mount their routes on.

It exists so that the real clients can be exercised over real HTTP (retries, headers, query strings)
without the network: a route table, exact-decimal JSON, per-path request counts, and fault injection.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import traceback
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from json import dumps as json_string
from typing import Any
from urllib.parse import parse_qs, urlsplit

ErrorBody = Callable[[int, str], Any]


class HttpError(Exception):
    """Raised by a route to answer with a status and the provider's own error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Reply:
    """What a route returns when it needs a status or headers of its own (e.g. a `Link` header)."""

    body: Any
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, list[str]]
    headers: Message
    method: str = "GET"
    body: bytes = b""
    match: re.Match[str] | None = None  # the route pattern's match, for routes with path parameters

    def json(self) -> Any:
        """The request body as JSON (numbers as exact Decimal); a body that is not JSON is a 400."""
        try:
            return json.loads(self.body or b"null", parse_float=Decimal)
        except ValueError:
            raise HttpError(400, "request body is not JSON") from None

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def params(self, name: str) -> list[str]:
        """A list parameter, sent either as `name[]=a&name[]=b` (the SDKs) or `name=a&name=b`."""
        return self.query.get(f"{name}[]", []) + self.query.get(name, [])


Route = Callable[[Request], Any]


def to_json(value: Any) -> str:
    """JSON text in which a Decimal is written as its exact decimal text, never through a float."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json_string(str(k))}: {to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_json(item) for item in value) + "]"
    return json_string(value)


@dataclass(frozen=True)
class _Fault:
    status: int
    headers: Mapping[str, str]
    body: Any
    path: str | None = None  # only requests for this path (None: any request)


class SimServer:
    """One simulated API host; `start()` binds an ephemeral port, `stop()` frees it.

    Routes are keyed by path (any method), by `"POST /path"`, or by a regular expression of the path
    (`"GET re:/projects/([^/]+)/queries"`; the match is in `request.match`). A route returns a JSON-able
    body, a `Reply` (status and headers), or raises `HttpError`. With `ssl_context` it speaks HTTPS.
    """

    def __init__(
        self, routes: Mapping[str, Route], error_body: ErrorBody, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.routes = dict(routes)
        self.error_body = error_body
        self.ssl_context = ssl_context
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._faults: deque[_Fault] = deque()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("simulator is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> SimServer:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        if self.ssl_context is not None:
            self._httpd.socket = self.ssl_context.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.sim = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="aispend-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(
        self,
        status: int,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        times: int = 1,
        path: str | None = None,
    ) -> None:
        """Answer the next `times` requests (for `path` only, if given) with `status` (default body: the
        provider's error envelope)."""
        payload = self.error_body(status, f"simulated HTTP {status}") if body is None else body
        with self._lock:
            self._faults.extend(_Fault(status, dict(headers or {}), payload, path) for _ in range(times))

    def request_count(self, path: str | None = None) -> int:
        """Requests received for `path` (all paths when None), injected failures included."""
        with self._lock:
            return self._counts[path] if path is not None else sum(self._counts.values())

    def handle(self, request: Request) -> tuple[int, Mapping[str, str], Any]:
        with self._lock:
            self._counts[request.path] += 1
            fault = next((f for f in self._faults if f.path in (None, request.path)), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None:
            return fault.status, fault.headers, fault.body
        try:
            route, request = self._route(request)
            answer = route(request)
        except HttpError as exc:
            return exc.status, {}, self.error_body(exc.status, exc.message)
        if isinstance(answer, Reply):
            return answer.status, answer.headers, answer.body
        return 200, {}, answer

    def _route(self, request: Request) -> tuple[Route, Request]:
        for key in (f"{request.method} {request.path}", request.path):
            if key in self.routes:
                return self.routes[key], request
        for key, route in self.routes.items():
            method, _, pattern = key.partition(" re:")
            if pattern and method == request.method:
                match = re.fullmatch(pattern, request.path)
                if match:
                    return route, replace(request, match=match)
        raise HttpError(404, f"no route for {request.method} {request.path}")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    sim: SimServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query = parse_qs(parts.query, keep_blank_values=True)
        request = Request(parts.path, query, self.headers, self.command, body)
        try:
            status, headers, body = self.server.sim.handle(request)
        except Exception as exc:
            traceback.print_exc()
            status, headers, body = 500, {}, self.server.sim.error_body(500, type(exc).__name__)
        raw = body if isinstance(body, bytes | str) else to_json(body)
        data = raw.encode() if isinstance(raw, str) else raw
        self.send_response_only(status)
        self.send_header("Server", self.version_string())
        # A simulator with a clock of its own (a configurable "today") sends its own Date header.
        self.send_header("Date", headers.get("Date") or self.date_time_string())
        if status != 204:
            kind = "text/plain" if isinstance(body, bytes | str) else "application/json"
            self.send_header("Content-Type", headers.get("Content-Type", kind))
        self.send_header("Content-Length", str(0 if status == 204 else len(data)))
        for name, value in headers.items():
            if name not in ("Content-Type", "Date"):
                self.send_header(name, value)
        self.end_headers()
        if status != 204:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: test and demo output stays readable."""
