"""Schema validation of line items (pandera on a frame, and the same rules in SQL on a DuckDB relation),
and the DDL/insert round trip of a `Table` in DuckDB."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import duckdb
import pandas as pd
import pytest

from aispend_pipeline.errors import ValidationError
from aispend_pipeline.schemas.line_items import LINE_ITEMS
from aispend_pipeline.schemas.table import Table
from aispend_pipeline.schemas.validation import validate, validate_stored
from aispend_pipeline_tests.ids import line_uuid

REQUIRED = [c.name for c in LINE_ITEMS.columns if not c.nullable]


def minimal_frame(days: list[object] | None = None) -> pd.DataFrame:
    """Valid rows with only the required columns of LINE_ITEMS, one row per day."""
    days = days if days is not None else ["2026-10-05", "2026-10-06", "2026-10-07"]
    n = len(days)
    return pd.DataFrame(
        {
            "line_id": [line_uuid(f"line-{i}") for i in range(n)],
            "usage_date": days,
            "provider": ["openai"] * n,
            "service": ["OpenAI API"] * n,
            "charge_category": ["Usage"] * n,
            "cost_usd": ["12.5", "-0.000000000001", "0"][:n] + ["1"] * max(0, n - 3),
            "data_lag": ["daily"] * n,
            "cost_source": ["billed"] * n,
        }
    )


def validate_in_duckdb(table: Table, frame: pd.DataFrame, source: str) -> int:
    """The SQL form of the rules, on the frame as a DuckDB relation (text columns stay VARCHAR)."""
    connection = duckdb.connect()
    connection.register("incoming", frame)
    try:
        return validate_stored(connection, table, "incoming", source)
    finally:
        connection.close()


@pytest.fixture(params=["pandera", "sql"])
def rejection(request: pytest.FixtureRequest):
    """Both validators must reject the same rows with the same kind of message."""
    check = validate if request.param == "pandera" else validate_in_duckdb

    def rejected(frame: pd.DataFrame, source: str = "openai") -> str:
        with pytest.raises(ValidationError) as caught:
            check(LINE_ITEMS, frame, source)
        return str(caught.value)

    return rejected


def test_sql_validation_passes_valid_rows_and_counts_them() -> None:
    frame = minimal_frame().assign(quantity=["1000", "2.5", None], token_direction=["input", "output", None])

    assert validate_in_duckdb(LINE_ITEMS, frame, "openai") == 3


def test_minimal_frame_has_exactly_the_required_columns() -> None:
    assert set(minimal_frame().columns) == set(REQUIRED)


@pytest.mark.parametrize(
    "days",
    [
        ["2026-10-05", "2026-10-06", "2026-10-07"],
        [pd.Timestamp("2026-10-05"), pd.Timestamp("2026-10-06"), pd.Timestamp("2026-10-07")],
        [date(2026, 10, 5), date(2026, 10, 6), date(2026, 10, 7)],
    ],
)
def test_valid_minimal_frame_passes_with_all_columns_in_declared_order(days: list[object]) -> None:
    frame = minimal_frame(days)

    out = validate(LINE_ITEMS, frame, "openai")

    assert list(out.columns) == LINE_ITEMS.column_names
    assert len(out) == 3
    assert list(out["usage_date"]) == [
        pd.Timestamp("2026-10-05"),
        pd.Timestamp("2026-10-06"),
        pd.Timestamp("2026-10-07"),
    ]
    assert list(out["cost_usd"]) == ["12.5", "-0.000000000001", "0"]
    assert list(out["line_id"]) == [line_uuid(f"line-{i}") for i in range(3)]
    optional = [c.name for c in LINE_ITEMS.columns if c.nullable]
    assert out[optional].isna().all().all()
    # The caller's frame is left as it was.
    assert list(frame.columns) == list(minimal_frame().columns)


def test_optional_columns_given_in_any_order_are_kept() -> None:
    frame = minimal_frame().assign(
        quantity=["1000", "2.5", None],
        token_direction=["input", "output", None],
        model=["gpt-4o", None, "o3"],
        project_id=["proj_a", "proj_b", None],
    )
    frame = frame[list(reversed(frame.columns))]

    out = validate(LINE_ITEMS, frame, "openai")

    assert list(out.columns) == LINE_ITEMS.column_names
    assert list(out["quantity"])[:2] == ["1000", "2.5"]
    assert list(out["model"]) == ["gpt-4o", None, "o3"]
    assert list(out["project_id"])[:2] == ["proj_a", "proj_b"]


@pytest.mark.parametrize(
    ("column", "bad", "shown"),
    [
        ("charge_category", "Refund", "'Refund'"),
        ("cost_usd", "12,5", "'12,5'"),
        ("cost_usd", "1e3", "'1e3'"),
        ("cost_usd", "0.1234567890123", "'0.1234567890123'"),
        ("cost_usd", "$12", "'$12'"),
        ("data_lag", "hourly", "'hourly'"),
        ("cost_source", "guessed", "'guessed'"),
    ],
)
def test_bad_value_names_provider_day_and_field(column: str, bad: str, shown: str, rejection) -> None:
    frame = minimal_frame()
    frame.loc[1, column] = bad

    message = rejection(frame)

    assert message.startswith("staging.line_items rejected 1 value(s)")
    assert f"openai 2026-10-06: field '{column}'" in message
    assert shown in message
    assert "2026-10-05" not in message and "2026-10-07" not in message


def test_the_rows_own_provider_is_named(rejection) -> None:
    frame = minimal_frame()
    frame.loc[2, "provider"] = "anthropic"
    frame.loc[2, "charge_category"] = "Refund"

    assert "anthropic 2026-10-07: field 'charge_category'" in rejection(frame, source="openai")


def test_decimal_object_instead_of_text_is_rejected() -> None:
    frame = minimal_frame()
    frame["cost_usd"] = frame["cost_usd"].astype(object)
    frame.loc[0, "cost_usd"] = Decimal("12.5")

    with pytest.raises(ValidationError, match="openai 2026-10-05: field 'cost_usd'"):
        validate(LINE_ITEMS, frame, "openai")


def test_null_provider_names_the_source_day_and_field(rejection) -> None:
    frame = minimal_frame()
    frame.loc[2, "provider"] = None

    message = rejection(frame, source="openai")

    assert "openai 2026-10-07: field 'provider'" in message
    assert "not_nullable" in message


@pytest.mark.parametrize("column", ["line_id", "service", "cost_usd", "data_lag"])
def test_null_in_any_required_column_is_rejected(column: str, rejection) -> None:
    frame = minimal_frame()
    frame.loc[0, column] = None

    assert f"openai 2026-10-05: field '{column}'" in rejection(frame)


def test_missing_required_column_is_rejected(rejection) -> None:
    message = rejection(minimal_frame().drop(columns=["service"]))

    assert "field 'service'" in message


def test_duplicate_line_id_names_the_field_and_days(rejection) -> None:
    frame = minimal_frame()
    frame.loc[2, "line_id"] = line_uuid("line-0")

    message = rejection(frame)

    assert "field 'line_id'" in message
    assert "openai 2026-10-05" in message
    assert "openai 2026-10-07" in message
    assert "2026-10-06" not in message


def test_many_failures_are_capped_in_the_message(rejection) -> None:
    frame = minimal_frame([f"2026-10-{d:02d}" for d in range(1, 11)])
    frame["charge_category"] = "Refund"

    message = rejection(frame)

    assert message.startswith("staging.line_items rejected 10 value(s)")
    assert message.count("field 'charge_category'") == 5
    assert message.endswith("; and 5 more")


def test_unknown_extra_column_is_rejected(rejection) -> None:
    assert "surprise" in rejection(minimal_frame().assign(surprise=["a", "b", "c"]))


def test_unparsable_usage_date_is_a_validation_error(rejection) -> None:
    frame = minimal_frame(["2026-10-05", "not-a-day", "2026-10-07"])

    assert "usage_date" in rejection(frame)


# ---------------------------------------------------------------- DuckDB round trip


def full_frame() -> pd.DataFrame:
    """Every LINE_ITEMS column, in a shuffled order; distinct money values in cost_usd and quantity."""
    frame = LINE_ITEMS.conform(minimal_frame().iloc[:1].reset_index(drop=True))
    frame["usage_date"] = pd.to_datetime(frame["usage_date"])
    frame.loc[0, "cost_usd"] = "0.123456789012"
    frame.loc[0, "quantity"] = "98765.000000000001"
    frame.loc[0, "model"] = "gpt-4o"
    frame.loc[0, "api_key_id"] = "key_1"
    columns = list(frame.columns)
    random.Random(7).shuffle(columns)
    assert columns != LINE_ITEMS.column_names
    return frame[columns]


@pytest.fixture
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute(f"CREATE SCHEMA {LINE_ITEMS.schema}")
    connection.execute(LINE_ITEMS.ddl())
    yield connection
    connection.close()


def test_ddl_declares_types_and_not_null(db: duckdb.DuckDBPyConnection) -> None:
    described = db.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'staging' AND table_name = 'line_items' ORDER BY ordinal_position"
    ).fetchall()

    assert [name for name, _, _ in described] == LINE_ITEMS.column_names
    types = {name: (data_type, nullable) for name, data_type, nullable in described}
    assert types["cost_usd"] == ("DECIMAL(38,12)", "NO")
    assert types["quantity"] == ("DECIMAL(38,12)", "YES")
    assert types["usage_date"] == ("DATE", "NO")
    assert types["model"] == ("VARCHAR", "YES")
    db.execute(LINE_ITEMS.ddl())  # IF NOT EXISTS: running it again is harmless


def test_insert_by_name_from_shuffled_frame_keeps_money_exact(db: duckdb.DuckDBPyConnection) -> None:
    frame = full_frame()
    db.register("incoming", frame)

    db.execute(LINE_ITEMS.insert_sql("incoming"))

    row = db.execute(
        "SELECT cost_usd, quantity, usage_date, provider, model, api_key_id, line_id, project_id "
        "FROM staging.line_items"
    ).fetchall()
    assert row == [
        (
            Decimal("0.123456789012"),
            Decimal("98765.000000000001"),
            date(2026, 10, 5),
            "openai",
            "gpt-4o",
            "key_1",
            uuid.UUID(line_uuid("line-0")),
            None,
        )
    ]
    cost = row[0][0]
    assert isinstance(cost, Decimal)
    assert cost.as_tuple() == Decimal("0.123456789012").as_tuple()


def test_exact_select_reads_money_back_as_text(db: duckdb.DuckDBPyConnection) -> None:
    db.register("incoming", full_frame())
    db.execute(LINE_ITEMS.insert_sql("incoming"))

    out = db.execute(LINE_ITEMS.exact_select("SELECT * FROM staging.line_items")).df()

    assert list(out.columns) == LINE_ITEMS.column_names
    assert out.loc[0, "cost_usd"] == "0.123456789012"
    assert out.loc[0, "quantity"] == "98765.000000000001"
    validated = validate(LINE_ITEMS, out, "openai")
    assert validated.loc[0, "cost_usd"] == "0.123456789012"


def test_validated_frame_inserts_and_null_required_column_is_refused(db: duckdb.DuckDBPyConnection) -> None:
    db.register("good", validate(LINE_ITEMS, minimal_frame(), "openai"))
    db.execute(LINE_ITEMS.insert_sql("good"))
    assert db.execute("SELECT sum(cost_usd) FROM staging.line_items").fetchall() == [(Decimal("12.499999999999"),)]

    bad = full_frame()
    bad["provider"] = None
    db.register("bad", bad)
    with pytest.raises(duckdb.ConstraintException):
        db.execute(LINE_ITEMS.insert_sql("bad"))


def _line_items_select(rows: list[tuple[str, str, str]]) -> str:
    """A SELECT of LINE_ITEMS' required columns: (line name, usage_date, cost_usd) per row, text as given."""
    values = ", ".join(f"('{line_uuid(line)}', '{day}', '{cost}')" for line, day, cost in rows)
    select = (
        "SELECT line_id, CAST(usage_date AS DATE) AS usage_date, 'openai' AS provider, 'OpenAI API' AS service, "
        "'Usage' AS charge_category, cost_usd, 'daily' AS data_lag, 'billed' AS cost_source "
        f"FROM (VALUES {values}) v(line_id, usage_date, cost_usd)"
    )
    return LINE_ITEMS.exact_select(f"({select})", set(REQUIRED), for_pandas=False)


@pytest.mark.parametrize(
    ("rows", "named"),
    [
        ([("a", "2026-10-05", "1"), ("a", "2026-10-05", "2")], "field 'line_id' failed field_uniqueness"),
        ([("a", "2026-10-05", "1.5"), ("b", "2026-10-05", "twelve")], "field 'cost_usd' failed"),
    ],
    ids=["a rule fails on the written rows", "the column type refuses a value"],
)
def test_a_checked_replace_writes_valid_rows_once_and_keeps_the_day_when_a_row_is_bad(
    tmp_path, rows: list[tuple[str, str, str]], named: str
) -> None:
    from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb", connection=con)
    day, after = date(2026, 10, 5), date(2026, 10, 6)
    good = _line_items_select([("kept", "2026-10-05", "0.000000000001"), ("other", "2026-10-05", "7")])
    for _ in range(2):  # re-running the same day changes nothing
        assert warehouse.replace_range_checked(LINE_ITEMS, good, {}, day, after, "openai") == 2
    stored = "SELECT CAST(line_id AS VARCHAR), CAST(cost_usd AS VARCHAR) FROM staging.line_items ORDER BY 1"
    kept = sorted([(line_uuid("kept"), "0.000000000001"), (line_uuid("other"), "7.000000000000")])
    assert con.execute(stored).fetchall() == kept
    with pytest.raises(ValidationError) as caught:
        warehouse.replace_range_checked(LINE_ITEMS, _line_items_select(rows), {}, day, after, "openai")
    assert named in str(caught.value) and "2026-10-05" in str(caught.value)
    assert con.execute(stored).fetchall() == kept
    views = "SELECT view_name FROM duckdb_views() WHERE NOT internal AND view_name LIKE 'stored_%'"
    assert not con.execute(views).fetchall(), "no view left behind"
