"""A streaming source's pull in a worker process, its chunks handed to the run's staging as they arrive.

Decoding a provider's pages is Python work: pulls in threads share one interpreter lock, so on 2 cores
four of them take as long as one after another. A long range (a backfill) is therefore pulled in a
worker process per source. The worker runs the same `pull_into` with a sink that sends each chunk as an
Arrow IPC stream over a pipe; the run's thread for that source receives it and appends it to the
source's staging, where it is numbered and checked exactly as a chunk pulled in the thread.

Workers fork from one forkserver that has imported the sources once (a worker costs no imports of its
own); each gets the run's environment and working directory (credential chains such as boto3's read
them), and the resource's settings as plain values. Nothing it pulls touches DuckDB: only the run's
process writes the file. A worker that fails sends its error message (as clear as in a thread); one that
dies is reported with its exit code. At most one worker more than cores runs at a time; the others wait.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib
import multiprocessing
import os
import pickle
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import Any

import pyarrow as pa

from aispend_pipeline.errors import AispendError, failure_message
from aispend_pipeline.schemas.table import Table
from aispend_pipeline.sources.base import RawPull, RowSink, SourceResource
from aispend_pipeline.warehouse.staging import Rows, columns_table

PRELOAD = ["aispend_pipeline.sources.registry"]  # imported once, by the forkserver
_context: Any = None
# One worker more than cores at a time: decoding is CPU-bound, so more would not pull faster, only hold more
# pages in memory at once (a year at full size: 1.88 GB for the run and three workers at once, the same
# pull time as four; one worker per core left the cores idle while a worker waited on its answer).
_slots = threading.BoundedSemaphore((len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2) + 1)


def _libc_trim() -> Any:
    """glibc's `malloc_trim`, or None elsewhere (musl, macOS, Windows: nothing to do)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _libc_trim()


def _name_process(name: str) -> None:
    """Name the worker in `ps` and `top` (Linux: the first 15 characters), so a pull's process is found."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name[:15])
    except OSError:
        pass


def release_freed_memory() -> None:
    """Give the heap's freed pages back to the system. glibc keeps what a decoded answer freed for reuse,
    in pieces it rarely returns; trimmed after each chunk, a full-size year's AWS worker held ~300 MB, not ~420."""
    if _malloc_trim is not None:
        _malloc_trim(0)


@dataclass(frozen=True)
class _Chunk:
    table: str  # qualified name
    key_columns: tuple[str, ...] | None
    arrow: bool  # the next message is an Arrow IPC stream (else a pickled frame)


@dataclass(frozen=True)
class _Done:
    api_requests: int
    days: frozenset[date] | None
    rounding_usd: dict[date, Decimal]


@dataclass(frozen=True)
class _Failed:
    message: str


def pull_in_worker(resource: SourceResource, source: str, start: date, end: date, sink: RowSink) -> RawPull:
    """`resource.pull_into(start, end, sink)`, run in a worker process; the chunks reach `sink` here."""
    with _slots:
        return _pull(resource, source, start, end, sink)


def _pull(resource: SourceResource, source: str, start: date, end: date, sink: RowSink) -> RawPull:
    context = _forkserver()
    receiving, sending = context.Pipe(duplex=False)
    settings = {name: getattr(resource, name) for name in type(resource).model_fields}
    target = (type(resource).__module__, type(resource).__qualname__)
    worker = context.Process(
        target=_work,
        args=(target, settings, source, start, end, sending, dict(os.environ), os.getcwd()),
        name=f"aispend-pull-{source}",
        daemon=True,
    )
    worker.start()
    sending.close()  # the worker holds the only sending end: its exit ends the stream
    tables = {t.qualified_name: t for t in (resource.raw_table, *resource.companion_tables)}
    try:
        while True:
            try:
                message = receiving.recv()
            except EOFError:
                worker.join(timeout=5)
                raise AispendError(
                    f"{source}: the pull's worker process stopped without an answer (exit code {worker.exitcode})"
                ) from None
            if isinstance(message, _Done):
                return RawPull(None, message.api_requests, message.days, message.rounding_usd)
            if isinstance(message, _Failed):
                raise AispendError(message.message)
            rows = receiving.recv_bytes()
            frame = pa.ipc.open_stream(rows).read_all() if message.arrow else pickle.loads(rows)
            sink.append(tables[message.table], frame, message.key_columns)
            del rows, frame
            release_freed_memory()
    finally:
        receiving.close()
        worker.join(timeout=5)
        if worker.is_alive():
            worker.kill()


def _forkserver() -> Any:
    """The forkserver context (spawn where there is none, e.g. Windows: each worker then imports on its own)."""
    global _context
    if _context is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            _context = multiprocessing.get_context("forkserver")
            _context.set_forkserver_preload(PRELOAD)
        else:
            _context = multiprocessing.get_context("spawn")
    return _context


class _PipeSink:
    """The worker's side: each chunk as a header, then its rows (Arrow IPC, or a pickled frame)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def append(self, table: Table, rows: Rows, key_columns: tuple[str, ...] | None) -> None:
        frame = columns_table(rows) if isinstance(rows, Mapping) else rows
        self.connection.send(_Chunk(table.qualified_name, key_columns, isinstance(frame, pa.Table)))
        if isinstance(frame, pa.Table):
            stream = pa.BufferOutputStream()
            with pa.ipc.new_stream(stream, frame.schema) as writer:
                writer.write_table(frame)
            self.connection.send_bytes(stream.getvalue())
        else:
            self.connection.send_bytes(pickle.dumps(frame))
        del frame, rows
        release_freed_memory()


def _work(
    target: tuple[str, str],
    settings: dict[str, Any],
    source: str,
    start: date,
    end: date,
    connection: Connection,
    environment: dict[str, str],
    cwd: str,
) -> None:
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(cwd)
    _name_process(f"pull-{source}")
    # The worker only decodes pages, which never form reference cycles, and exits when done: the cycle
    # collector stays off. Paused per answer and re-enabled, it walked every decoded object once more after
    # each one (a year of Cost Explorer at full size: 13.9 -> 8.2 s of CPU; OpenAI 30.9 -> 23.5 s).
    gc.disable()
    try:
        module, name = target
        resource = getattr(importlib.import_module(module), name)(**settings)
        pulled = resource.pull_into(start, end, _PipeSink(connection))
        connection.send(_Done(pulled.api_requests, pulled.days, dict(pulled.rounding_usd)))
    except Exception as exc:  # the run reports it for this source, as it would an error in a thread
        connection.send(_Failed(failure_message(source, exc)))
    finally:
        connection.close()
