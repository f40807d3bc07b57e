"""A source's pulled rows on their way into the run's copy: staged chunk by chunk, numbered, checked in SQL.

A pull runs in its own thread with its own cursor on the run's working copy. Its client hands over
column chunks (one page at a time, see `core.http.iter_daily_bucket_columns`) or, for sources whose
answers are small, one pandas frame; chunks are appended to `incoming.<table>` (columns through Arrow)
once they add up to `STAGE_ROWS`, so no whole-range frame is ever held in memory. `finish` then numbers
lines that share every key column (`line_ordinal`, in arrival order, so identical lines stay distinct: a
view, computed once by the copy into the raw table) and checks the rows against the raw table's rules in
SQL (`schemas.validation.validate_stored`). `store_pull` copies the staged rows into the raw table; the
`incoming` schema is dropped before the copy is published.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from aispend_pipeline.schemas.table import Table
from aispend_pipeline.schemas.validation import validate_stored

SCHEMA = "incoming"
ORDER_COLUMN = "arrival"  # the line's position in the pull, for `line_ordinal`
ORDINAL_COLUMN = "line_ordinal"
ARRIVED_SUFFIX = "__arrived"  # the staged rows as they arrived, under the view that numbers them
# Rows per INSERT: at least two of DuckDB's row groups (122,880 rows), so that a chunk is written to its blocks
# once instead of through the write-ahead log and again at the checkpoint (2 M OpenAI-like rows: 6.0 s in
# 50,000-row INSERTs, 3.5 s in 250,000-row ones).
STAGE_ROWS = 250_000
_chunk_names = itertools.count()
Rows = Mapping[str, Sequence[Any]] | pd.DataFrame | pa.Table  # a chunk: columns, a frame or an Arrow table


def staged_name(table: Table) -> str:
    return f"{SCHEMA}.{table.schema}__{table.name}"


class Staging:
    """The staged rows of one source's pull (created in the run's thread, filled in the pull's)."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, source: str, tables: Sequence[Table]) -> None:
        self.source = source
        self.tables = {t.qualified_name: t for t in tables}
        self.key_columns: dict[str, tuple[str, ...] | None] = {}
        self.arrived: dict[str, int] = dict.fromkeys(self.tables, 0)
        self.pending: dict[str, list[pa.Table | pd.DataFrame]] = {name: [] for name in self.tables}
        self.pending_rows: dict[str, int] = dict.fromkeys(self.tables, 0)
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        for table in tables:
            columns = ", ".join(
                f"{c.name} {'VARCHAR' if c.is_decimal else c.sql_type}"  # money stays text until checked
                for c in table.columns
            )
            connection.execute(f"CREATE OR REPLACE TABLE {staged_name(table)} ({columns}, {ORDER_COLUMN} BIGINT)")
        self.connection = connection.cursor()  # the pull thread's own connection to the same file

    def append(self, table: Table, rows: Rows, key_columns: tuple[str, ...] | None) -> None:
        """Stage a chunk of `table`'s rows (columns named like the table's). With `key_columns`, `finish`
        numbers the lines; without, the rows carry their own `line_ordinal`."""
        name = table.qualified_name
        self.key_columns[name] = key_columns
        frame = columns_table(rows) if isinstance(rows, Mapping) else rows
        count = frame.num_rows if isinstance(frame, pa.Table) else len(frame)
        if not count:
            return
        order = np.arange(self.arrived[name], self.arrived[name] + count)
        if isinstance(frame, pa.Table):
            frame = frame.append_column(ORDER_COLUMN, pa.array(order))
        else:
            frame = frame.assign(**{ORDER_COLUMN: order})
        self.arrived[name] += count
        self.pending[name].append(frame)
        self.pending_rows[name] += count
        if self.pending_rows[name] >= STAGE_ROWS:
            self._flush(table)

    def _flush(self, table: Table) -> None:
        """Insert the chunks held for `table` in one statement (their types unified by DuckDB, by name)."""
        name = table.qualified_name
        chunks, self.pending[name], self.pending_rows[name] = self.pending[name], [], 0
        if not chunks:
            return
        names = [f"staged_chunk_{next(_chunk_names)}" for _ in chunks]
        try:
            for chunk, frame in zip(names, chunks, strict=True):
                self.connection.register(chunk, frame)
            union = " UNION ALL BY NAME ".join(
                f"SELECT {_as_staged(frame)} FROM {chunk}" for chunk, frame in zip(names, chunks, strict=True)
            )
            self.connection.execute(f"INSERT INTO {staged_name(table)} BY NAME {union}")
        finally:
            for chunk in names:
                self.connection.unregister(chunk)

    def finish(self) -> dict[str, int]:
        """Number the lines and check the staged tables; return the rows per table (qualified name).

        The first table (the source's raw table) always counts, rows or not; a companion table only when
        the pull handed it rows (even none), so that a pull without it leaves its stored days alone.
        """
        for table in self.tables.values():
            self._flush(table)
        rows = {}
        first = next(iter(self.tables))
        for name, table in self.tables.items():
            if name != first and name not in self.key_columns:
                continue
            staged = staged_name(table)
            keys = self.key_columns.get(name)
            numbered = None
            if keys:  # a view numbers the lines: the copy into the raw table is their only write
                arrived = f"{staged}{ARRIVED_SUFFIX}"
                self.connection.execute(f"ALTER TABLE {staged} RENAME TO {arrived.split('.', 1)[1]}")
                others = ", ".join(c for c in table.column_names if c != ORDINAL_COLUMN)
                self.connection.execute(
                    f"CREATE VIEW {staged} AS SELECT {others}, row_number() OVER (PARTITION BY {', '.join(keys)} "
                    f"ORDER BY {ORDER_COLUMN}) - 1 AS {ORDINAL_COLUMN} FROM {arrived}"
                )
                numbered = ORDINAL_COLUMN if table.unique_key == (*keys, ORDINAL_COLUMN) else None
            else:
                self.connection.execute(f"ALTER TABLE {staged} DROP COLUMN {ORDER_COLUMN}")
            rows[name] = validate_stored(self.connection, table, staged, self.source, numbered)
        return rows

    def drop(self) -> None:
        self.pending = {name: [] for name in self.tables}
        for table in self.tables.values():
            staged = staged_name(table)
            schema, name = staged.split(".", 1)
            for kind, found in self.connection.execute(
                "SELECT 'VIEW', view_name FROM duckdb_views() WHERE schema_name = $schema AND view_name = $name "
                "UNION ALL SELECT 'TABLE', table_name FROM duckdb_tables() WHERE schema_name = $schema "
                "AND table_name IN ($name, $name || $suffix)",
                {"schema": schema, "name": name, "suffix": ARRIVED_SUFFIX},
            ).fetchall():
                self.connection.execute(f"DROP {kind} {schema}.{found}")
        self.connection.close()


def _as_staged(frame: pa.Table | pd.DataFrame) -> str:
    """The chunk's columns, decimals read in C (`core.columnar`) as the staged money text (plain, exact)."""
    if not isinstance(frame, pa.Table):
        return "*"
    decimals = [f.name for f in frame.schema if pa.types.is_decimal(f.type)]
    return f"* REPLACE ({', '.join(f'CAST({n} AS VARCHAR) AS {n}' for n in decimals)})" if decimals else "*"


def columns_table(columns: Mapping[str, Sequence[Any]]) -> pa.Table | pd.DataFrame:
    """A client's columns as an Arrow table (built in C, scanned by DuckDB without Python objects or the
    GIL: 2.3x faster than object columns); None stays NULL. Columns Arrow cannot type (mixed kinds) go as
    pandas object columns, which DuckDB casts value by value."""
    try:
        return pa.table({name: pa.array(values) for name, values in columns.items()})
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in columns.items()})
