"""A tiny threaded JSON server on 127.0.0.1 that the provider simulators mount their routes on.

It exists so that the real clients can be exercised over real HTTP (retries, headers, query strings)
without the network: a route table, exact-decimal JSON, per-path request counts, and fault injection.
"""

from __future__ import annotations

import threading
import traceback
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
class Request:
    path: str
    query: dict[str, list[str]]
    headers: Message

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


class SimServer:
    """One simulated API host; `start()` binds an ephemeral port, `stop()` frees it."""

    def __init__(self, routes: Mapping[str, Route], error_body: ErrorBody) -> None:
        self.routes = dict(routes)
        self.error_body = error_body
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
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SimServer:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
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
        self, status: int, headers: Mapping[str, str] | None = None, body: Any = None, times: int = 1
    ) -> None:
        """Answer the next `times` requests with `status` (default body: the provider's error envelope)."""
        payload = self.error_body(status, f"simulated HTTP {status}") if body is None else body
        with self._lock:
            self._faults.extend(_Fault(status, dict(headers or {}), payload) for _ in range(times))

    def request_count(self, path: str | None = None) -> int:
        """Requests received for `path` (all paths when None), injected failures included."""
        with self._lock:
            return self._counts[path] if path is not None else sum(self._counts.values())

    def handle(self, request: Request) -> tuple[int, Mapping[str, str], Any]:
        with self._lock:
            self._counts[request.path] += 1
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            return fault.status, fault.headers, fault.body
        route = self.routes.get(request.path)
        try:
            if route is None:
                raise HttpError(404, f"no route for {request.path}")
            return 200, {}, route(request)
        except HttpError as exc:
            return exc.status, {}, self.error_body(exc.status, exc.message)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    sim: SimServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        request = Request(parts.path, parse_qs(parts.query, keep_blank_values=True), self.headers)
        try:
            status, headers, body = self.server.sim.handle(request)
        except Exception as exc:
            traceback.print_exc()
            status, headers, body = 500, {}, self.server.sim.error_body(500, type(exc).__name__)
        raw = body if isinstance(body, bytes | str) else to_json(body)
        data = raw.encode() if isinstance(raw, str) else raw
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(body, bytes | str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: test and demo output stays readable."""
