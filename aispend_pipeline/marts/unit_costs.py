"""`unit_costs`: what a million tokens or an active seat costs, per month, team, provider and model.

Set-based over `cost_line_items` (the billed cost, never changed here) and the token usage the sources
store beside it (`Source.usage_tokens_sql`: OpenAI completions usage, Anthropic's messages usage report).

- **cost_usd**: the Usage charges of the key (for seat products, `billing_model = 'seats'`, the seat
  Purchase charges), exactly as in `cost_line_items`.
- **tokens** by kind (`input` = uncached input, `cache_read`, `cache_write`, `output`): each token cost line
  is grouped with the lines of the same day, provider, project/workspace, model and kind. A group takes the
  provider's usage tokens of that key when a usage table has them, times the team's share of its lines
  (`allocation_share`: all lines of a group share their allocation keys, so they are attributed alike),
  else the lines' own token quantity (`unit` tokens, or Count/Units/count on Bedrock and GCP token
  lines). OpenRouter's lines carry prompt + completion tokens with no direction: they count in `tokens`
  only. Usage tokens with no cost line of their key make no row: tokens never create cost.
- **prices**: `usd_per_million_tokens` = cost_usd / tokens x 1e6; by direction, the cost of the input
  (uncached, cache read and write) or output lines over their tokens. Exact to 12 decimals (half-even),
  NULL where there are no tokens.
- **cache_read_savings_usd** = cache-read tokens x (uncached input price - cache read price), both per-token
  prices derived from cost / tokens of the same provider, model and month over every team; NULL unless
  both are known and the row has cache reads.
- **seats**: distinct users with a seat line in the month; **active_seats**: those whose last activity
  falls in the month; `usd_per_active_seat` = cost_usd / active_seats (NULL with no active seat).
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb

from aispend_pipeline.core.money import EXACT_RATIO_MACROS_SQL
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS
from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.sources.registry import SOURCES
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

TOKEN_KINDS = ("input", "cache_read", "cache_write", "output")
TOKEN_QUANTITY_UNITS = ("tokens", "token", "count", "units")  # lower(unit) of token lines across providers
SEAT_PROVIDERS = tuple(s.name for s in SOURCES if s.billing_model == "seats")
USAGE_TABLES = tuple(t for s in SOURCES if s.usage_tokens_sql for t in s.companion_tables)

UNIT_COSTS = Table(
    "main",
    "unit_costs",
    (
        Column("month", "DATE", nullable=False, description="First day of the UTC month."),
        Column("team", nullable=False),
        Column("provider", nullable=False),
        Column("model", description="NULL for charges not tied to a model (tool calls, seats, invoices)."),
        Column("cost_usd", DECIMAL, nullable=False, description="Usage charges (seat products: seat charges)."),
        Column("tokens", DECIMAL, description="Every token counted (NULL: none known)."),
        Column("input_tokens", DECIMAL, description="Uncached input tokens."),
        Column("cache_read_tokens", DECIMAL),
        Column("cache_write_tokens", DECIMAL),
        Column("output_tokens", DECIMAL),
        Column("token_source", description="usage_api, cost_quantity or mixed: where the tokens come from."),
        Column("usd_per_million_tokens", DECIMAL, description="cost_usd / tokens x 1e6."),
        Column("input_cost_usd", DECIMAL, description="Cost of the input lines (uncached, cache read, write)."),
        Column("usd_per_million_input_tokens", DECIMAL),
        Column("output_cost_usd", DECIMAL),
        Column("usd_per_million_output_tokens", DECIMAL),
        Column("cache_read_savings_usd", DECIMAL, description="What cache reads saved against uncached input."),
        Column("seats", "BIGINT", description="Seat products: users with a seat in the month."),
        Column("active_seats", "BIGINT", description="Seat products: seats whose last activity is in the month."),
        Column("usd_per_active_seat", DECIMAL),
        Column("line_count", "BIGINT", nullable=False),
    ),
    description="Unit economics per month, team, provider and model: tokens beside billed cost, USD per "
    "million tokens by direction, cache-read savings, USD per active seat.",
    date_column="month",
    unique_key=("month", "team", "provider", "model"),
)


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")" if values else "(NULL)"


# The charges a unit cost is computed over: usage, and the seat charges of seat products.
COUNTED_CHARGES = f"(charge_category = 'Usage' OR (charge_category = 'Purchase' AND provider IN {_in(SEAT_PROVIDERS)}))"


def _usage_sql() -> str:
    empty = (
        "SELECT CAST(NULL AS VARCHAR) AS provider, CAST(NULL AS DATE) AS usage_date, CAST(NULL AS VARCHAR) "
        "AS project_id, CAST(NULL AS VARCHAR) AS workspace_id, CAST(NULL AS VARCHAR) AS model, "
        + ", ".join(f"CAST(NULL AS BIGINT) AS {k}" for k in TOKEN_KINDS)
        + " WHERE false"
    )
    parts = [s.usage_tokens_sql for s in SOURCES if s.usage_tokens_sql] or [empty]
    return "\n    UNION ALL BY NAME ".join(f"SELECT * FROM ({sql})" for sql in parts)


def unit_costs_sql() -> str:
    """SELECT of unit_costs rows for the whole months [$start, $end) (both month-aligned).

    One pass over the month's lines: grouped once by day, key, model and kind (the token groups, and the
    other lines beside them), then once by month, team, provider and model; the prices over every team are
    window sums of that. Seats are counted over the seat products' lines alone.
    """
    per_kind = ",\n        ".join(f"sum(tokens) FILTER (WHERE kind = '{k}') AS {k}_tokens" for k in TOKEN_KINDS)
    usage_sums = ", ".join(f"sum({k}) AS {k}" for k in TOKEN_KINDS)
    usage_of_kind = " ".join(f"WHEN '{k}' THEN u.{k}" for k in TOKEN_KINDS)
    month = "CAST(date_trunc('month', usage_date) AS DATE)"
    in_month = f"last_activity_date >= {month} AND last_activity_date < {month} + INTERVAL 1 MONTH"
    return f"""
WITH usage AS (  -- the providers' usage tokens per day, key and model, one column per kind
    SELECT provider, usage_date, project_id, workspace_id, model, {usage_sums}
    FROM ({_usage_sql()})
    WHERE usage_date >= $start AND usage_date < $end
    GROUP BY ALL
),
line_groups AS (  -- the lines of one day, key, model and kind (kind NULL: not a token line)
    SELECT {month} AS month, usage_date, team, provider, project_id, workspace_id, model,
        CASE WHEN token_direction = 'output' THEN 'output'
             WHEN token_direction = 'input' AND token_cache_action = 'read' THEN 'cache_read'
             WHEN token_direction = 'input' AND token_cache_action = 'write' THEN 'cache_write'
             WHEN token_direction = 'input' THEN 'input'
             WHEN lower(unit) IN ('tokens', 'token') THEN 'unsplit' END AS kind,
        sum(cost_usd) AS cost_usd,
        count(*) AS line_count,
        max(allocation_share) AS share,
        CASE WHEN count(*) FILTER (WHERE lower(unit) IN {_in(TOKEN_QUANTITY_UNITS)} AND quantity IS NOT NULL)
                  = count(*)
             THEN sum(quantity) END AS quantity_tokens
    FROM {COST_LINE_ITEMS.qualified_name}
    WHERE usage_date >= $start AND usage_date < $end AND {COUNTED_CHARGES}
    GROUP BY ALL
),
group_tokens AS (  -- a token group's tokens: the key's usage tokens times the team's share, else the lines' own
    SELECT g.*, CASE g.kind {usage_of_kind} END AS usage_tokens
    FROM line_groups g
    LEFT JOIN usage u
      ON u.provider = g.provider AND u.usage_date = g.usage_date
     AND u.project_id IS NOT DISTINCT FROM g.project_id AND u.workspace_id IS NOT DISTINCT FROM g.workspace_id
     AND u.model IS NOT DISTINCT FROM g.model
),
sourced AS (
    SELECT month, team, provider, model, kind, cost_usd, line_count,
        CASE WHEN kind IS NULL THEN NULL
             WHEN usage_tokens IS NOT NULL THEN CAST(usage_tokens * share AS {DECIMAL})
             ELSE CAST(quantity_tokens AS {DECIMAL}) END AS tokens,
        CASE WHEN kind IS NULL THEN NULL
             WHEN usage_tokens IS NOT NULL THEN 'usage_api'
             WHEN quantity_tokens IS NOT NULL THEN 'cost_quantity' END AS token_source
    FROM group_tokens
),
teams AS (
    SELECT month, team, provider, model,
        sum(cost_usd) AS cost_usd,
        sum(line_count) AS line_count,
        sum(tokens) AS tokens,
        {per_kind},
        CASE WHEN count(DISTINCT token_source) > 1 THEN 'mixed' ELSE any_value(token_source) END AS token_source,
        sum(cost_usd) FILTER (WHERE kind IN ('input', 'cache_read', 'cache_write')) AS input_cost_usd,
        sum(tokens) FILTER (WHERE kind IN ('input', 'cache_read', 'cache_write')) AS input_direction_tokens,
        sum(cost_usd) FILTER (WHERE kind = 'output') AS output_cost_usd,
        sum(tokens) FILTER (WHERE kind = 'output') AS output_direction_tokens,
        -- this team's part of the prices of its provider, model and month (summed over teams below)
        sum(cost_usd) FILTER (WHERE kind = 'input' AND tokens IS NOT NULL) AS uncached_cost,
        sum(cost_usd) FILTER (WHERE kind = 'cache_read' AND tokens IS NOT NULL) AS cache_read_cost
    FROM sourced
    GROUP BY ALL
),
seats AS (
    SELECT {month} AS month, team, provider, model,
        count(DISTINCT user_name) AS seats,
        count(DISTINCT user_name) FILTER (WHERE {in_month}) AS active_seats
    FROM {COST_LINE_ITEMS.qualified_name}
    WHERE usage_date >= $start AND usage_date < $end AND {COUNTED_CHARGES} AND provider IN {_in(SEAT_PROVIDERS)}
    GROUP BY ALL
)
SELECT
    t.month, t.team, t.provider, t.model, t.cost_usd,
    t.tokens, t.input_tokens, t.cache_read_tokens, t.cache_write_tokens, t.output_tokens, t.token_source,
    exact_ratio(t.cost_usd, 1000000, t.tokens) AS usd_per_million_tokens,
    t.input_cost_usd,
    exact_ratio(t.input_cost_usd, 1000000, t.input_direction_tokens) AS usd_per_million_input_tokens,
    t.output_cost_usd,
    exact_ratio(t.output_cost_usd, 1000000, t.output_direction_tokens) AS usd_per_million_output_tokens,
    CASE WHEN t.model IS NOT NULL THEN
        exact_ratio(sum(t.uncached_cost) OVER prices, t.cache_read_tokens, sum(t.input_tokens) OVER prices)
        - exact_ratio(sum(t.cache_read_cost) OVER prices, t.cache_read_tokens, sum(t.cache_read_tokens) OVER prices)
    END AS cache_read_savings_usd,
    s.seats,
    s.active_seats,
    CASE WHEN t.provider IN {_in(SEAT_PROVIDERS)} THEN exact_ratio(t.cost_usd, 1, s.active_seats) END
        AS usd_per_active_seat,
    t.line_count
FROM teams t
LEFT JOIN seats s
  ON s.month = t.month AND s.team = t.team AND s.provider = t.provider AND s.model IS NOT DISTINCT FROM t.model
WINDOW prices AS (PARTITION BY t.month, t.provider, t.model)  -- per provider, model and month, over every team
"""


def months_touched(start: date, end: date) -> tuple[date, date]:
    """[first day of start's month, first day of the month after the range's last day)."""
    return start.replace(day=1), _next_month(end - timedelta(days=1))


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def build_unit_costs(con: duckdb.DuckDBPyConnection, start: date, end: date) -> tuple[date, date]:
    """Replace the whole months touched by [start, end) of unit_costs; returns those months' range."""
    first, after = months_touched(start, end)
    warehouse = DuckDBWarehouse(":memory:", connection=con)
    warehouse.ensure_tables([COST_LINE_ITEMS, *USAGE_TABLES, UNIT_COSTS])
    con.execute(EXACT_RATIO_MACROS_SQL)
    # Month by month: a year's token groups spill past the memory cap (8.8 M lines: 37 s -> 23 s).
    warehouse.replace_range_from_sql(UNIT_COSTS, unit_costs_sql(), first, after, month_ranges(first, after))
    return first, after


def month_ranges(first: date, after: date) -> list[tuple[date, date]]:
    """The whole months [month start, next month start) that tile [first, after) (both month starts)."""
    ranges = []
    while first < after:
        ranges.append((first, _next_month(first)))
        first = ranges[-1][1]
    return ranges


def unit_cost_mismatches(con: duckdb.DuckDBPyConnection, first: date, after: date) -> list[tuple]:
    """(month, cost_line_items cost, unit_costs cost) for every month in [first, after) where they differ."""
    return con.execute(
        f"""
        WITH lines AS (
            SELECT CAST(date_trunc('month', usage_date) AS DATE) AS month, sum(cost_usd) AS cost_usd
            FROM {COST_LINE_ITEMS.qualified_name}
            WHERE usage_date >= $start AND usage_date < $end AND {COUNTED_CHARGES}
            GROUP BY 1
        ), mart AS (
            SELECT month, sum(cost_usd) AS cost_usd FROM {UNIT_COSTS.qualified_name}
            WHERE month >= $start AND month < $end GROUP BY 1
        )
        SELECT coalesce(l.month, m.month), l.cost_usd, m.cost_usd FROM lines l FULL JOIN mart m USING (month)
        WHERE l.cost_usd IS DISTINCT FROM m.cost_usd
        """,
        {"start": first, "end": after},
    ).fetchall()
