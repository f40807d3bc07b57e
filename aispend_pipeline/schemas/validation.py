"""Validate a frame against a table's pandera schema and say which source, day and field broke it."""

from __future__ import annotations

import pandas as pd
import pandera.errors

from aispend_pipeline.errors import ValidationError
from aispend_pipeline.schemas.table import Table

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
    more = len(failures) - MAX_REPORTED_FAILURES
    suffix = f"; and {more} more" if more > 0 else ""
    return f"{table.qualified_name} rejected {len(failures)} value(s): " + "; ".join(lines) + suffix
