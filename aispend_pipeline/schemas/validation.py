"""Validate rows against a table's declaration and say which source, day and field broke it.

Two ways, one set of rules (from the table's `Column`s: type, not null, allowed values, exact decimal
text, unique key):
- `validate`: a pandas frame, with the table's pandera schema (seed snapshots and other small frames);
- `validate_stored`: rows already in DuckDB (a run's staged raw pulls, the line items), checked in SQL
  on the whole relation, one scan for all the rules and one query per unique key: no row crosses into
  pandas. The examples in the message are read only when a rule failed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import duckdb
import pandas as pd
import pandera.errors

from aispend_pipeline.core.money import MONEY_TEXT_PATTERN
from aispend_pipeline.errors import ValidationError
from aispend_pipeline.schemas.table import Column, Table

MAX_REPORTED_FAILURES = 5


def validate(table: Table, frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Return the validated frame, or raise `ValidationError` naming source, day, field and value."""
    unknown = [c for c in frame.columns if c not in table.column_names]
    if unknown:
        raise ValidationError(f"{source}: field '{unknown[0]}' is not a column of {table.qualified_name}")
    frame = table.conform(frame)
    try:
        return table.pandera_schema().validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        raise ValidationError(_describe(table, frame, source, exc.failure_cases)) from None


def _describe(table: Table, frame: pd.DataFrame, source: str, failures: pd.DataFrame) -> str:
    lines = []
    for failure in failures.head(MAX_REPORTED_FAILURES).itertuples():
        where = source
        index = failure.index
        if index is not None and not pd.isna(index) and index in frame.index:
            row = frame.loc[index]
            provider = row.get("provider") if "provider" in frame.columns else None
            day = row.get(table.date_column) if table.date_column in frame.columns else None
            parsed = pd.to_datetime(day, errors="coerce") if day is not None else pd.NaT
            where = f"{provider or source} {'' if pd.isna(parsed) else parsed.date()}"
        field = failure.column if isinstance(failure.column, str) else "(table)"
        lines.append(f"{where.strip()}: field '{field}' failed {failure.check} (value {failure.failure_case!r})")
    return _message(table, len(failures), lines)


def _message(table: Table, failures: int, lines: list[str]) -> str:
    more = failures - MAX_REPORTED_FAILURES
    suffix = f"; and {more} more" if more > 0 else ""
    return f"{table.qualified_name} rejected {failures} value(s): " + "; ".join(lines) + suffix


@dataclass(frozen=True)
class _Rule:
    column: str
    check: str
    failing: str  # SQL condition true on a failing row


def _rules(table: Table, types: dict[str, str]) -> list[_Rule]:
    """The SQL form of the table's rules, given the stored relation's column types."""
    rules: list[_Rule] = []
    for column in table.columns:
        name, stored = column.name, types[column.name]
        if not column.nullable:
            rules.append(_Rule(name, "not_nullable", f"{name} IS NULL"))
        if column.is_decimal and stored == "VARCHAR":
            pattern = f"^(?:{MONEY_TEXT_PATTERN})$"
            rules.append(_Rule(name, f"str_matches('{pattern}')", f"NOT regexp_full_match({name}, '{pattern}')"))
        elif not column.is_stored_as(stored):
            rules.append(
                _Rule(name, f"coerce_dtype('{column.sql_type}')", f"TRY_CAST({name} AS {column.sql_type}) IS NULL")
            )
        if column.allowed is not None:
            allowed = ", ".join(_sql_text(v) for v in column.allowed)
            rules.append(_Rule(name, f"isin({list(column.allowed)})", f"{name} NOT IN ({allowed})"))
    return rules


def validate_stored(
    con: duckdb.DuckDBPyConnection, table: Table, relation: str, source: str, numbered: str | None = None
) -> int:
    """Check the rows of `relation` (a table or view in `con`) against `table`'s rules; return the row count.

    The relation must have every required column and no column the table does not declare. Raises
    `ValidationError` with the same message as `validate`: source (or the row's provider), day, field,
    value, at most five examples and the number of failing values. `numbered` names a column the
    relation numbers itself, `row_number()` over the rest of the unique key: its rules and the key's
    hold by construction, so they are not scanned (nor is the numbering computed).
    """
    types = {row[0]: row[1] for row in con.execute(f"DESCRIBE {relation}").fetchall()}
    unknown = [c for c in types if c not in table.column_names]
    if unknown:
        raise ValidationError(f"{source}: field '{unknown[0]}' is not a column of {table.qualified_name}")
    missing = [c for c in table.columns if c.name not in types and not c.nullable]
    if missing:
        raise ValidationError(_message(table, 1, [f"{source}: field '{missing[0].name}' failed column_in_dataframe"]))
    present = dataclasses.replace(table, columns=tuple(c for c in table.columns if c.name in types))
    rules = [r for r in _rules(present, types) if r.column != numbered]
    counts = con.execute(
        "SELECT count(*)" + "".join(f", count_if({r.failing})" for r in rules) + f" FROM {relation}"
    ).fetchone()
    assert counts is not None
    rows, failed = int(counts[0]), [(r, int(n)) for r, n in zip(rules, counts[1:], strict=True) if n]
    duplicates = [] if numbered and numbered in table.unique_key else _duplicates(con, present, relation)
    if not failed and not duplicates:
        return rows
    where = _where_sql(present, source)
    lines: list[str] = []
    for rule, _ in failed:
        if len(lines) >= MAX_REPORTED_FAILURES:
            break
        examples = con.execute(
            f"SELECT {where}, CAST({rule.column} AS VARCHAR) FROM {relation} WHERE {rule.failing} "
            f"LIMIT {MAX_REPORTED_FAILURES - len(lines)}"
        ).fetchall()
        lines += [f"{at}: field '{rule.column}' failed {rule.check} (value {value!r})" for at, value in examples]
    lines += duplicates[: max(0, MAX_REPORTED_FAILURES - len(lines))]
    raise ValidationError(_message(table, sum(n for _, n in failed) + len(duplicates), lines))


def _duplicates(con: duckdb.DuckDBPyConnection, table: Table, relation: str) -> list[str]:
    """One line per row whose unique key another row shares (as pandera reports them)."""
    key = [c for c in table.unique_key if c in table.column_names]
    if not key:
        return []
    names = ", ".join(key)
    repeated = con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {relation} GROUP BY {names} HAVING count(*) > 1)")
    if not repeated.fetchone()[0]:  # type: ignore[index]
        return []
    where = _where_sql(table, "")
    shown = key[0] if len(key) == 1 else "(table)"
    check = "field_uniqueness" if len(key) == 1 else "multiple_fields_uniqueness"
    rows = con.execute(
        f"SELECT {where}, CAST({key[0]} AS VARCHAR) FROM (SELECT *, count(*) OVER (PARTITION BY {names}) AS copies "
        f"FROM {relation}) WHERE copies > 1 ORDER BY {names} LIMIT 1000"
    ).fetchall()
    return [f"{at.strip()}: field '{shown}' failed {check} (value {value!r})" for at, value in rows]


def _where_sql(table: Table, source: str) -> str:
    """`<provider or source> <day>` of a row, as the messages name it."""
    who = f"coalesce(provider, {_sql_text(source)})" if "provider" in table.column_names else _sql_text(source)
    day = table.date_column
    if day not in table.column_names:
        return who
    return f"trim({who} || ' ' || coalesce(CAST(TRY_CAST({day} AS DATE) AS VARCHAR), ''))"


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


__all__ = ["Column", "validate", "validate_stored"]
