"""`Table`: one declaration of a table's columns, from which its DDL, insert and pandera schema derive.

Frames crossing the Python/DuckDB boundary carry money (and other decimals) as exact decimal text,
dates as `datetime64`, everything else as text. DuckDB casts on insert, by column name, so a frame's
column order never matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

from aispend_pipeline.core.money import MONEY_SQL_TYPE, MONEY_TEXT_PATTERN

DECIMAL = MONEY_SQL_TYPE


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str = "VARCHAR"
    nullable: bool = True
    allowed: tuple[str, ...] | None = None
    description: str = ""

    @property
    def is_decimal(self) -> bool:
        return self.sql_type.startswith("DECIMAL")

    def is_stored_as(self, stored_type: str) -> bool:
        """Whether DuckDB's name of a stored type (`DECIMAL(38,12)`) is this column's declared type."""
        return stored_type.replace(" ", "") == self.sql_type.replace(" ", "")

    @property
    def read_as_text(self) -> bool:
        """Read into pandas as text: exact decimals, and UUIDs (as their canonical 36-character text)."""
        return self.is_decimal or self.sql_type == "UUID"

    def pandera_column(self) -> pa.Column:
        checks: list[pa.Check] = []
        if self.is_decimal:
            checks.append(pa.Check.str_matches(rf"^(?:{MONEY_TEXT_PATTERN})\Z", error="exact decimal text"))
        if self.allowed is not None:
            checks.append(pa.Check.isin(list(self.allowed)))
        if self.sql_type == "DATE":
            return pa.Column("datetime64[ns]", nullable=self.nullable, coerce=True)
        if self.sql_type in ("INTEGER", "BIGINT"):
            return pa.Column("Int64", nullable=self.nullable, coerce=True)
        if self.sql_type == "BOOLEAN":
            return pa.Column("boolean", nullable=self.nullable, coerce=True)
        return pa.Column(object, checks=checks, nullable=self.nullable)


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]
    description: str = ""
    date_column: str = "usage_date"
    unique_key: tuple[str, ...] = ()

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def casts_sql(self) -> str:
        """Every column cast to its SQL type under its own name (a SELECT list for inserts and comparisons)."""
        return ", ".join(f"CAST({c.name} AS {c.sql_type}) AS {c.name}" for c in self.columns)

    def ddl(self) -> str:
        body = ",\n  ".join(f"{c.name} {c.sql_type}{'' if c.nullable else ' NOT NULL'}" for c in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.qualified_name} (\n  {body}\n)"

    def insert_sql(self, frame_name: str) -> str:
        """Insert a registered frame by column name, casting text to each column's SQL type."""
        names = ", ".join(self.column_names)
        return f"INSERT INTO {self.qualified_name} ({names}) SELECT {self.casts_sql} FROM {frame_name}"

    def exact_select(self, relation: str, present: set[str] | None = None, *, for_pandas: bool = True) -> str:
        """Select a relation as this table's columns; `for_pandas`: decimals and UUIDs as text, so pandas
        never sees a float (nor a `uuid.UUID` where the rules expect text).

        Columns absent from `present` (the relation's own columns, default: all) come out as NULL.
        `for_pandas=False` keeps the relation's own types (for rows that stay in DuckDB).
        """

        def expression(column: Column) -> str:
            as_text = for_pandas and column.read_as_text
            if present is not None and column.name not in present:
                return f"CAST(NULL AS {'VARCHAR' if as_text else column.sql_type}) AS {column.name}"
            return f"CAST({column.name} AS VARCHAR) AS {column.name}" if as_text else column.name

        return "SELECT " + ", ".join(expression(c) for c in self.columns) + f" FROM ({relation})"

    def pandera_schema(self) -> pa.DataFrameSchema:
        return pa.DataFrameSchema(
            {c.name: c.pandera_column() for c in self.columns},
            strict=True,
            unique=list(self.unique_key) or None,
            name=self.qualified_name,
        )

    def conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Add absent nullable columns as NULL and put columns in declared order."""
        frame = frame.copy()
        for column in self.columns:
            if column.name not in frame.columns:
                frame[column.name] = None
        return frame[self.column_names]
