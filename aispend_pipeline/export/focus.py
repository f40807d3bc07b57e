"""`aispend export focus`: the FOCUS dataset of a range of days as a CSV or Parquet file.

The DuckDB file is opened read-only, so an export never takes the write lock and never changes the file;
it runs between the short writes of a pipeline run. The CSV is what FOCUS tools read best: exact decimals as
text that always carries a decimal point, timestamps in ISO 8601 with `Z`, Tags as a JSON object. Parquet
(PATH ending in `.parquet`) keeps DuckDB's own types (DECIMAL, TIMESTAMP WITH TIME ZONE), written by
DuckDB itself. The file appears complete or not at all (written beside the target, then renamed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb

from aispend_pipeline.errors import AispendError
from aispend_pipeline.marts.focus import FocusColumn, focus_columns, focus_select_sql
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse


class ExportError(AispendError):
    """The export could not be written; nothing was written at the output path."""


@dataclass(frozen=True)
class ExportSummary:
    rows: int
    billed_cost: Decimal
    path: Path
    file_format: str


def _csv_expression(column: FocusColumn) -> str:
    """How a column is written as CSV text (NULL stays an empty field)."""
    name = column.name
    if column.kind == "decimal":
        # DECIMAL text always has a point; drop trailing zeros but keep one digit after it (`1250000.0`).
        trimmed = f"rtrim(CAST({name} AS VARCHAR), '0')"
        return f"CASE WHEN ends_with({trimmed}, '.') THEN {trimmed} || '0' ELSE {trimmed} END AS {name}"
    if column.kind == "datetime":
        return f"strftime({name}, '%Y-%m-%dT%H:%M:%SZ') AS {name}"
    if column.kind == "json":
        return f"CAST({name} AS VARCHAR) AS {name}"
    return name


def _quoted_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def export_focus(database: Path, first: date, last: date, output: Path) -> ExportSummary:
    """Write the FOCUS rows of days first..last (inclusive) to `output`; CSV unless it ends in .parquet."""
    if first > last:
        raise ExportError(f"--start {first} is after --end {last}")
    if not database.is_file():
        raise ExportError(
            f"no DuckDB file at {database}: run `aispend materialize` (or `aispend demo`) first, "
            "or set AISPEND_DUCKDB_PATH to the file"
        )
    if not output.parent.is_dir():
        raise ExportError(f"cannot write {output}: directory {output.parent} does not exist")
    if output.is_dir():
        raise ExportError(f"cannot write {output}: it is a directory")
    parquet = output.suffix.lower() == ".parquet"
    columns = focus_columns()
    select = focus_select_sql("WHERE usage_date >= $start AND usage_date < $end")
    rendered = "*" if parquet else ", ".join(_csv_expression(c) for c in columns)
    ordered = f"SELECT {rendered} FROM ({select}) ORDER BY ChargePeriodStart, x_CostLineId"
    options = "FORMAT parquet, COMPRESSION zstd" if parquet else "FORMAT csv, HEADER true"
    params = {"start": first, "end": last + timedelta(days=1)}
    partial = output.with_name(f".{output.name}.partial")
    table = COST_LINE_ITEMS.qualified_name
    with DuckDBWarehouse(database, read_only=True).connect() as con:
        if not _has_table(con):
            raise ExportError(f"{database} has no {table} yet: run `aispend materialize` first")
        con.execute("BEGIN TRANSACTION")  # one snapshot for the file and its summary
        try:
            rows, total = con.execute(
                f"SELECT count(*), coalesce(sum(BilledCost), 0) FROM ({select})", params
            ).fetchone() or (0, Decimal(0))
        except duckdb.Error as exc:
            raise ExportError(f"cannot read {table} in {database}: {_first_line(exc)}") from None
        try:
            con.execute(f"COPY ({ordered}) TO {_quoted_path(partial)} ({options})", params)
            os.replace(partial, output)
        except (duckdb.Error, OSError) as exc:
            partial.unlink(missing_ok=True)
            raise ExportError(f"cannot write {output}: {_first_line(exc)}") from None
        con.execute("COMMIT")
    return ExportSummary(int(rows), Decimal(total), output, "parquet" if parquet else "csv")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _has_table(con: duckdb.DuckDBPyConnection) -> bool:
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [COST_LINE_ITEMS.schema, COST_LINE_ITEMS.name],
    ).fetchone()
    return bool(found and found[0])
