"""`build_unit_costs` on hand-crafted lines: the price, savings and seat formulas, splits, NULLs, months."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import duckdb
import pytest

from aispend_pipeline.core.money import EXACT_RATIO_MACROS_SQL
from aispend_pipeline.marts.unit_costs import (
    USAGE_TABLES,
    build_unit_costs,
    month_ranges,
    months_touched,
    unit_cost_mismatches,
)
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse
from aispend_pipeline_tests.ids import line_uuid

NOV = date(2026, 11, 1)
TWELVE = Decimal("1e-12")


def line(n: int, day: str, provider: str, cost: str, **fields: Any) -> dict[str, Any]:
    base = {
        "cost_line_id": line_uuid(f"c{n}"),
        "line_id": line_uuid(f"l{n}"),
        "usage_date": day,
        "provider": provider,
        "service": "s",
    }
    base |= {"charge_category": "Usage", "cost_usd": cost, "data_lag": "daily", "cost_source": "billed"}
    return base | {"team": "search", "allocation_method": "direct", "allocation_share": "1"} | fields


LINES = [
    # OpenAI, project proj_a, model m1: uncached input, cache reads and output, tokens from the usage report.
    line(1, "2026-11-05", "openai", "2.50", project_id="proj_a", model="m1", token_direction="input"),
    line(2, "2026-11-05", "openai", "0.25", project_id="proj_a", model="m1", token_direction="input",
         token_cache_action="read"),
    line(3, "2026-11-05", "openai", "1.00", project_id="proj_a", model="m1", token_direction="output"),
    line(4, "2026-11-05", "openai", "0.75", project_id="proj_a", model=None),  # a tool call: cost, no tokens
    # A shared project split 1:3 between two teams: each team gets its share of the key's tokens.
    line(5, "2026-11-06", "openai", "1.00", project_id="proj_b", model="m1", token_direction="input",
         team="search", allocation_method="split:seed", allocation_share="0.25"),
    line(6, "2026-11-06", "openai", "3.00", project_id="proj_b", model="m1", token_direction="input",
         team="growth", allocation_method="split:seed", allocation_share="0.75"),
    # Output cost but zero output tokens in the usage report: no price, never a division by zero.
    line(7, "2026-11-06", "openai", "0.40", project_id="proj_b", model="m1", token_direction="output",
         team="growth", allocation_method="split:seed", allocation_share="1"),
    # A provider whose token lines carry their own quantity (Bedrock: unit Count).
    line(8, "2026-11-05", "aws", "0.30", account_id="111", model="nova", token_direction="input",
         quantity="100000", unit="Count"),
    # No tokens anywhere (Azure): cost only, every ratio NULL.
    line(9, "2026-11-05", "azure", "5.00", model="gpt-4o", token_direction="input"),
    # Seats: u1 active in November, u2 last active in October, u3 never; a credit is not a unit cost.
    line(10, "2026-11-05", "github_copilot", "0.633333333333", user_name="u1", charge_category="Purchase",
         last_activity_date="2026-11-04", quantity="1", unit="seat-days"),
    line(11, "2026-11-06", "github_copilot", "0.633333333333", user_name="u1", charge_category="Purchase",
         last_activity_date="2026-11-04", quantity="1", unit="seat-days"),
    line(12, "2026-11-05", "github_copilot", "0.633333333333", user_name="u2", charge_category="Purchase",
         last_activity_date="2026-10-20", quantity="1", unit="seat-days"),
    line(13, "2026-11-05", "github_copilot", "0.633333333333", user_name="u3", charge_category="Purchase",
         quantity="1", unit="seat-days"),
    line(14, "2026-11-05", "openai", "-9.00", charge_category="Credit"),
    # October: outside the months the build touches.
    line(15, "2026-10-31", "openai", "7.00", project_id="proj_a", model="m1", token_direction="input"),
]  # fmt: skip

OPENAI_USAGE = [
    # day, project, model, input (incl. cached), cached, uncached (absent on older data), output
    ("2026-11-05", "proj_a", "m1", 1_200_000, 200_000, None, 300_007),
    ("2026-11-06", "proj_b", "m1", 1_000_000, 0, 1_000_000, 0),
    ("2026-10-31", "proj_a", "m1", 999, 0, 999, 0),
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    DuckDBWarehouse(":memory:", connection=connection).ensure_tables([COST_LINE_ITEMS, *USAGE_TABLES])
    for row in LINES:
        names = ", ".join(row)
        connection.execute(
            f"INSERT INTO main.cost_line_items ({names}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
        )
    for ordinal, (day, project, model, inp, cached, uncached, out) in enumerate(OPENAI_USAGE):
        connection.execute(
            "INSERT INTO raw.openai_usage (usage_date, project_id, model, input_tokens, input_cached_tokens, "
            "input_uncached_tokens, output_tokens, num_model_requests, line_ordinal) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
            [day, project, model, inp, cached, uncached, out, ordinal],
        )
    return connection


def rows(con: duckdb.DuckDBPyConnection) -> dict[tuple, dict[str, Any]]:
    cursor = con.execute("SELECT * FROM main.unit_costs")
    names = [d[0] for d in cursor.description]
    return {(r[0], r[1], r[2], r[3]): dict(zip(names, r, strict=True)) for r in cursor.fetchall()}


def exact(n: Decimal, m: Decimal | int, d: Decimal | int) -> Decimal:
    return (Decimal(n) * m / Decimal(d)).quantize(TWELVE, rounding=ROUND_HALF_EVEN)


def test_prices_are_cost_over_tokens_exactly_and_savings_use_both_derived_prices(con) -> None:
    build_unit_costs(con, date(2026, 11, 5), date(2026, 11, 7))
    m1 = rows(con)[(NOV, "search", "openai", "m1")]

    # search's m1 tokens: proj_a whole, plus its quarter of proj_b's uncached input.
    assert (m1["input_tokens"], m1["cache_read_tokens"], m1["output_tokens"]) == (1_250_000, 200_000, 300_007)
    assert m1["tokens"] == 1_750_007 and m1["cache_write_tokens"] is None and m1["token_source"] == "usage_api"
    assert m1["cost_usd"] == Decimal("4.75")
    assert m1["usd_per_million_tokens"] == exact(Decimal("4.75"), 10**6, 1_750_007)
    assert m1["usd_per_million_output_tokens"] == exact(Decimal("1.00"), 10**6, 300_007)
    assert m1["usd_per_million_input_tokens"] == exact(Decimal("3.75"), 10**6, 1_450_000)
    # Prices over every team of the model and month: uncached (2.50 + 1.00 + 3.00) / 2,000,000 tokens,
    # cache read 0.25 / 200,000; savings = 200,000 x (3.25e-6 - 1.25e-6).
    assert m1["cache_read_savings_usd"] == Decimal("0.4")
    growth = rows(con)[(NOV, "growth", "openai", "m1")]
    assert growth["input_tokens"] == 750_000 and growth["output_tokens"] == 0
    assert growth["usd_per_million_output_tokens"] is None, "zero tokens: no price, no division by zero"
    assert growth["cache_read_savings_usd"] is None, "no cache reads"


def test_rows_without_tokens_keep_their_cost_and_have_null_ratios(con) -> None:
    build_unit_costs(con, date(2026, 11, 5), date(2026, 11, 7))
    got = rows(con)

    tool = got[(NOV, "search", "openai", None)]
    assert tool["cost_usd"] == Decimal("0.75") and tool["tokens"] is None and tool["usd_per_million_tokens"] is None
    azure = got[(NOV, "search", "azure", "gpt-4o")]
    assert azure["tokens"] is None and azure["usd_per_million_input_tokens"] is None
    nova = got[(NOV, "search", "aws", "nova")]
    assert nova["input_tokens"] == 100_000 and nova["token_source"] == "cost_quantity"
    assert nova["usd_per_million_tokens"] == Decimal("3")
    assert sum(r["cost_usd"] for r in got.values()) == Decimal("14.2") + 4 * Decimal("0.633333333333")
    assert all(r["seats"] is None for k, r in got.items() if k[2] != "github_copilot")


def test_seat_products_count_seats_active_in_the_month(con) -> None:
    build_unit_costs(con, date(2026, 11, 5), date(2026, 11, 7))
    seats = rows(con)[(NOV, "search", "github_copilot", None)]

    assert (seats["seats"], seats["active_seats"]) == (3, 1)
    assert seats["cost_usd"] == 4 * Decimal("0.633333333333")
    assert seats["usd_per_active_seat"] == seats["cost_usd"]
    assert seats["tokens"] is None


def test_only_the_months_touched_are_replaced_whole(con) -> None:
    build_unit_costs(con, date(2026, 10, 31), date(2026, 11, 1))
    october = rows(con)
    assert set(october) == {(date(2026, 10, 1), "search", "openai", "m1")}

    con.execute("DELETE FROM main.cost_line_items WHERE usage_date = '2026-10-31'")
    build_unit_costs(con, date(2026, 11, 6), date(2026, 11, 7))
    again = rows(con)
    assert (
        again[(date(2026, 10, 1), "search", "openai", "m1")] == october[(date(2026, 10, 1), "search", "openai", "m1")]
    )
    assert again[(NOV, "search", "openai", "m1")]["input_tokens"] == 1_250_000, "all of November, not one day"
    build_unit_costs(con, date(2026, 11, 6), date(2026, 11, 7))
    assert rows(con) == again, "a re-run changes nothing"


def test_months_touched() -> None:
    assert months_touched(date(2026, 11, 30), date(2026, 12, 2)) == (NOV, date(2027, 1, 1))
    assert months_touched(date(2026, 12, 1), date(2027, 1, 1)) == (date(2026, 12, 1), date(2027, 1, 1))


def test_a_range_of_months_is_built_month_by_month_with_the_same_rows(con) -> None:
    build_unit_costs(con, date(2026, 10, 31), date(2026, 11, 1))
    build_unit_costs(con, date(2026, 11, 1), date(2026, 12, 1))
    one_at_a_time = rows(con)
    con.execute("DELETE FROM main.unit_costs")
    assert build_unit_costs(con, date(2026, 10, 31), date(2026, 11, 7)) == (date(2026, 10, 1), date(2026, 12, 1))
    assert rows(con) == one_at_a_time and {k[0] for k in one_at_a_time} == {date(2026, 10, 1), NOV}
    assert month_ranges(date(2026, 11, 1), date(2027, 2, 1)) == [
        (date(2026, 11, 1), date(2026, 12, 1)),
        (date(2026, 12, 1), date(2027, 1, 1)),
        (date(2027, 1, 1), date(2027, 2, 1)),
    ]


@pytest.mark.parametrize(
    ("n", "m", "d"),
    [("1", 1, 3), ("-1", 1, 3), ("0.000000000001", 1, 2), ("0.000000000003", 1, 2), ("99999.123456789012", 10**6, 7)],
)
def test_exact_ratio_rounds_half_even_at_twelve_decimals(n: str, m: int, d: int) -> None:
    connection = duckdb.connect()
    connection.execute(EXACT_RATIO_MACROS_SQL)
    got = connection.execute(f"SELECT exact_ratio(CAST('{n}' AS DECIMAL(38, 12)), {m}, {d})").fetchone()
    assert got == (exact(Decimal(n), m, d),)
    assert connection.execute("SELECT exact_ratio(1, 1, 0), exact_ratio(1, 1, NULL)").fetchone() == (None, None)


def test_the_reconciliation_finds_a_month_whose_cost_differs(con) -> None:
    first, after = build_unit_costs(con, date(2026, 10, 31), date(2026, 11, 7))
    assert unit_cost_mismatches(con, first, after) == []

    con.execute("UPDATE main.unit_costs SET cost_usd = cost_usd + 0.000001 WHERE provider = 'aws'")
    assert unit_cost_mismatches(con, first, after) == [
        (NOV, Decimal("14.2") + 4 * Decimal("0.633333333333"), Decimal("14.200001") + 4 * Decimal("0.633333333333"))
    ]
