"""One publish per run: a run builds its result in a working copy and swaps it in at the end.

Analysts read the published file (`AISPEND_DUCKDB_PATH`) read-only. A run never writes to it: it
copies it to `<file>.building-<run>`, writes every table there, runs the blocking checks, and only
then renames the copy over the published file (an atomic `os.replace`). So a reader sees every
table either as before the run or as the run left it, never a mix; a failed check, a failed step or
a killed process leaves the published file exactly as it was (the abandoned copy is removed by the
next run). One run at a time per file: a lock file beside it makes a second run fail at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb

from aispend_pipeline.errors import AispendError
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

BUILDING_SUFFIX = ".building-"


class WarehouseBusyError(AispendError):
    """The published file is in use by a writer: another run, or a read-write session."""


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


@contextlib.contextmanager
def run_lock(database: Path) -> Iterator[None]:
    """Hold the file's run lock for the block, or fail at once naming the run that holds it."""
    database.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(database)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise WarehouseBusyError(
                f"another aispend run ({holder}) is writing {database}; runs on one file never overlap: "
                "wait for it to finish (the Dagster run queue runs them one after the other)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def refuse_foreign_writer(database: Path) -> None:
    """Fail within seconds if a process holds the published file read-write (DuckDB's own lock)."""
    if not database.exists():
        return
    try:
        duckdb.connect(str(database), read_only=True).close()
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise AispendError(f"cannot read {database}: {exc}") from None
        raise WarehouseBusyError(
            f"{database} is held read-write by another process ({_lock_holder(exc)}): close that session "
            "(open the file with read_only=True to query it while runs publish)"
        ) from None


def _lock_holder(exc: Exception) -> str:
    text = str(exc)
    marker = "(PID "
    return "PID " + text.split(marker, 1)[1].split(")", 1)[0] if marker in text else "unknown process"


def working_copy_path(database: Path, run_id: str) -> Path:
    return database.with_name(f"{database.name}{BUILDING_SUFFIX}{run_id[:12]}")


def remove_abandoned_copies(database: Path) -> list[Path]:
    """Working copies left by killed runs (only called while holding the run lock)."""
    removed = []
    for path in database.parent.glob(f"{database.name}{BUILDING_SUFFIX}*"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextlib.contextmanager
def publishing(database: str | Path, run_id: str, config: dict | None = None) -> Iterator[DuckDBWarehouse]:
    """A warehouse over the run's working copy; published by rename when the block ends without error."""
    database = Path(database)
    with run_lock(database):
        refuse_foreign_writer(database)
        remove_abandoned_copies(database)
        working = working_copy_path(database, run_id)
        if database.exists():
            shutil.copyfile(database, working)
        connection = duckdb.connect(str(working), config=config or {})
        try:
            connection.execute("SET TimeZone = 'UTC'")
            yield DuckDBWarehouse(working, connection=connection)
            connection.execute("CHECKPOINT")
        except BaseException:
            connection.close()
            working.unlink(missing_ok=True)
            raise
        connection.close()
        try:
            refuse_foreign_writer(database)  # a writer that appeared during the run would lose its writes
        except BaseException:
            working.unlink(missing_ok=True)
            raise
        _fsync(working)
        os.replace(working, database)
        _fsync(database.parent)


def _fsync(path: Path) -> None:
    """Make the copy durable before it replaces the published file (and the rename after it)."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
