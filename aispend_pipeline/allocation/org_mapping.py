"""Attribute every line item to a team with the org_mapping.csv rules, set-based in DuckDB.

A line's allocation keys (project, workspace, API key, ...) are unpivoted to (dimension, value)
pairs and equi-joined with the rules valid on the line's day. The most specific dimension wins,
then a rule for the exact provider over a `*` rule. A team named by the source itself (a manual
invoice's team column) wins over every rule. Lines no rule matches go to team `unallocated`.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from aispend_pipeline.schemas.line_items import ALLOCATION_KEY_COLUMNS, LINE_ITEMS, UNALLOCATED_TEAM
from aispend_pipeline.schemas.table import Column, Table
from aispend_pipeline.seed_files import MANUAL_INVOICES_FILE, ORG_MAPPING_FILE, MappingRule

ORG_MAPPING = Table(
    "staging",
    "org_mapping",
    (
        Column("rule_line", "BIGINT", nullable=False, description="Line of org_mapping.csv."),
        Column("provider", nullable=False),
        Column("dimension", nullable=False),
        Column("value", nullable=False),
        Column("team", nullable=False),
        Column("cost_centre"),
        Column("product"),
        Column("valid_from", "DATE"),
        Column("valid_to", "DATE"),
        Column("dimension_rank", "BIGINT", nullable=False),
    ),
    description="The org_mapping.csv rules as last loaded.",
    date_column="valid_from",
)


def rules_frame(rules: list[MappingRule]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "rule_line": r.line,
                "provider": r.provider,
                "dimension": r.dimension,
                "value": r.value,
                "team": r.team,
                "cost_centre": r.cost_centre,
                "product": r.product,
                "valid_from": pd.Timestamp(r.valid_from) if r.valid_from else pd.NaT,
                "valid_to": pd.Timestamp(r.valid_to) if r.valid_to else pd.NaT,
                "dimension_rank": r.rank,
            }
            for r in rules
        ],
        columns=ORG_MAPPING.column_names,
    )


# The run's days of line items, each with its row number in the table (`line_row`): the best rule is
# found per row number and joined back on it, so no hash table holds a line id string per line
# (measured at 8.8 M lines under a 1 GB cap: 58 s -> 29 s, most of the rest being the write itself).
LINES = (
    f"(SELECT rowid AS line_row, * FROM {LINE_ITEMS.qualified_name} WHERE usage_date >= $start AND usage_date < $end)"
)
RULE_LINE_BITS = 32  # rule_line < 2**32 (a line of org_mapping.csv)


def _key_pairs_sql(dimensions: Collection[str]) -> str:
    """(line_row, provider, usage_date, dimension, value) for every non-null allocation key some rule can
    match (`dimensions`: those of the rules; `*` for a provider-wide rule). A key no rule names would
    only be joined for nothing: `model` alone is a key of most token lines (at 11 M lines, the 13 unpivoted
    keys were 4 times the rows the 6 used ones are)."""
    selects = [
        f"SELECT line_row, provider, usage_date, '{dimension}' AS dimension, {column} AS value "
        f"FROM {LINES} WHERE {column} IS NOT NULL"
        for dimension, column in ALLOCATION_KEY_COLUMNS.items()
        if dimension in dimensions
    ]
    if "*" in dimensions:
        selects.append(f"SELECT line_row, provider, usage_date, '*' AS dimension, '*' AS value FROM {LINES}")
    if not selects:  # no rule at all: every line is unallocated
        selects.append(f"SELECT line_row, provider, usage_date, '' AS dimension, '' AS value FROM {LINES} WHERE false")
    return "\n    UNION ALL ".join(selects)


def _preference_sql() -> str:
    """A matching rule's preference as one BIGINT, smallest first: the most specific dimension, then the
    exact provider over `*`, then the earlier line; its low bits are the rule's line."""
    return (
        f"m.dimension_rank * {2 ** (RULE_LINE_BITS + 1)} "
        f"+ CAST(m.provider = '*' AS BIGINT) * {2**RULE_LINE_BITS} + m.rule_line"
    )


def allocation_sql(dimensions: Collection[str]) -> str:
    """SELECT producing cost_line_items rows for the days [$start, $end) of staging.line_items, by the
    org_mapping rules of `dimensions` (the dimensions the loaded rules use)."""
    line_columns = ", ".join(f"l.{c}" for c in LINE_ITEMS.column_names)
    return f"""
WITH best AS (
    SELECT k.line_row, min({_preference_sql()}) % {2**RULE_LINE_BITS} AS rule_line
    FROM ({_key_pairs_sql(dimensions)}) k
    JOIN {ORG_MAPPING.qualified_name} m
      ON m.dimension = k.dimension AND m.value = k.value AND m.provider IN (k.provider, '*')
     AND (m.valid_from IS NULL OR k.usage_date >= m.valid_from)
     AND (m.valid_to IS NULL OR k.usage_date < m.valid_to)
    GROUP BY k.line_row
)
SELECT
    l.line_id AS cost_line_id,
    {line_columns},
    coalesce(l.assigned_team, b.team, '{UNALLOCATED_TEAM}') AS team,
    CASE WHEN l.assigned_team IS NOT NULL THEN l.assigned_cost_centre ELSE b.cost_centre END AS cost_centre,
    CASE WHEN l.assigned_team IS NULL THEN b.product END AS product,
    CASE WHEN l.assigned_team IS NOT NULL OR b.team IS NOT NULL THEN 'direct' ELSE 'unallocated' END
        AS allocation_method,
    CAST(1 AS DECIMAL(38, 12)) AS allocation_share,
    CASE WHEN l.assigned_team IS NOT NULL THEN '{MANUAL_INVOICES_FILE}'
         WHEN b.team IS NOT NULL THEN '{ORG_MAPPING_FILE} line ' || b.rule_line END AS allocation_rule
FROM {LINES} l
LEFT JOIN best ON best.line_row = l.line_row
LEFT JOIN {ORG_MAPPING.qualified_name} b ON b.rule_line = best.rule_line
"""
