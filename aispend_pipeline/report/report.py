"""`write_report`: one self-contained HTML file (plotly.js inline once) answering the questions of a review.

Every figure and table comes from one SQL query over the DuckDB file (set-based); amounts in tables are
the exact DECIMAL sums (cents shown, the exact value in `data-exact`), chart heights only are floats.
Tables other work adds (`spend_anomalies`, `unit_costs`) are shown when they exist, else a note says so.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import plotly.graph_objects as go

from aispend_pipeline.marts.source_inventory import SOURCE_INVENTORY
from aispend_pipeline.report.html import STYLE, Figures, horizontal_bars, stacked_bars, table_html, usd_html
from aispend_pipeline.schemas.line_items import (
    ALLOCATION_KEY_COLUMNS,
    COST_LINE_ITEMS,
    TEAM_DAILY_SPEND,
    UNALLOCATED_TEAM,
)

REPORT_DAYS = 90
TOP_MODELS = 15
TOP_SERIES = 12  # teams (or providers) drawn on their own in the daily charts; the rest as one
TOP_CHANGES = 20  # teams in the week-over-week chart (the table lists every team)
TOP_UNMAPPED_KEYS = 20
ANOMALY_CONTEXT_SERIES = 6
ANOMALIES_TABLE = "main.spend_anomalies"
UNIT_COSTS_TABLE = "main.unit_costs"
UNIT_COST_ROWS = 60
UNIT_COST_COLUMNS = (
    "month",
    "team",
    "provider",
    "model",
    "cost_usd",
    "tokens",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "usd_per_million_tokens",
    "usd_per_million_input_tokens",
    "usd_per_million_output_tokens",
    "cache_read_savings_usd",
    "seats",
    "active_seats",
    "usd_per_active_seat",
    "token_source",
)
SPEND = TEAM_DAILY_SPEND.qualified_name
LINES = COST_LINE_ITEMS.qualified_name
IN_WINDOW = "usage_date BETWEEN $first AND $last"
DIMENSION_OF = {column: dimension for dimension, column in ALLOCATION_KEY_COLUMNS.items()}


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    body: str


def _query(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple]]:
    cursor = con.execute(sql, params)
    return [d[0] for d in cursor.description], cursor.fetchall()


def table_exists(con: duckdb.DuckDBPyConnection, qualified_name: str) -> bool:
    schema, name = qualified_name.split(".")
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, name]
    ).fetchone()
    return bool(found and found[0])


def _overview(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> Section:
    total, days_with_data = con.execute(
        f"SELECT coalesce(sum(cost_usd), 0), count(DISTINCT usage_date) FROM {SPEND} WHERE {IN_WINDOW}", params
    ).fetchone() or (Decimal(0), 0)
    providers = _query(
        con,
        f"SELECT provider, sum(cost_usd) AS cost_usd FROM {SPEND} WHERE {IN_WINDOW} GROUP BY 1 ORDER BY 2 DESC",
        params,
    )
    teams = _query(
        con, f"SELECT team, sum(cost_usd) AS cost_usd FROM {SPEND} WHERE {IN_WINDOW} GROUP BY 1 ORDER BY 2 DESC", params
    )
    total_html = usd_html(total, attrs=' id="total-spend"')
    kpis = (
        f'<div class="kpis"><div class="kpi"><div class="label">Total spend (USD)</div>'
        f'<div class="value">{total_html}</div></div>'
        f'<div class="kpi"><div class="label">Days with data</div><div class="value">{days_with_data}</div></div>'
        f'<div class="kpi"><div class="label">Providers</div><div class="value">{len(providers[1])}</div></div>'
        f'<div class="kpi"><div class="label">Teams</div><div class="value">{len(teams[1])}</div></div></div>'
    )
    tables = (
        f'<div class="grid"><div><h3>By provider</h3>{table_html(*providers, "totals-by-provider")}</div>'
        f"<div><h3>By team</h3>{table_html(*teams, 'totals-by-team')}</div></div>"
    )
    return Section("overview", "Overview", kpis + tables)


def _daily(con: duckdb.DuckDBPyConnection, params: dict[str, Any], figures: Figures) -> Section:
    def series(column: str) -> list[tuple]:
        """(day, name, USD) of the window's top series by spend; the others summed as one 'other' series
        (a stack of hundreds of teams shows none of them, and costs seconds to draw)."""
        return con.execute(
            f"""
            WITH ranked AS (
                SELECT {column} AS name, row_number() OVER (ORDER BY sum(cost_usd) DESC, {column}) AS place,
                    count(*) OVER () AS names
                FROM {SPEND} WHERE {IN_WINDOW} GROUP BY 1
            )
            SELECT s.usage_date,
                CASE WHEN r.place <= {TOP_SERIES} THEN r.name ELSE 'other (' || (r.names - {TOP_SERIES}) || ')' END,
                CAST(sum(s.cost_usd) AS DOUBLE)
            FROM {SPEND} s JOIN ranked r ON r.name = s.{column}
            WHERE {IN_WINDOW} GROUP BY 1, 2 ORDER BY min(r.place), 1
            """,
            params,
        ).fetchall()

    body = figures.html(stacked_bars(series("team"), "Daily spend by team (USD)"), "daily-by-team")
    body += figures.html(stacked_bars(series("provider"), "Daily spend by provider (USD)"), "daily-by-provider")
    note = (
        '<p class="note">Invoiced vendors (data lag monthly) are spread evenly over the days of their month, '
        "so their share of a day is an average.</p>"
    )
    return Section("daily", "Daily spend", body + note)


def _models(con: duckdb.DuckDBPyConnection, params: dict[str, Any], figures: Figures) -> Section:
    columns, rows = _query(
        con,
        f"""
        SELECT model, provider, sum(cost_usd) AS cost_usd,
            sum(quantity) FILTER (WHERE unit = 'tokens') AS tokens, count(DISTINCT team) AS teams
        FROM {LINES} WHERE {IN_WINDOW} AND model IS NOT NULL
        GROUP BY 1, 2 ORDER BY cost_usd DESC, model LIMIT {TOP_MODELS}
        """,
        params,
    )
    if not rows:
        return Section("models", "Top models", '<p class="note">No line in the window names a model.</p>')
    chart = horizontal_bars(
        [f"{m} ({p})" for m, p, *_ in rows], [float(r[2]) for r in rows], f"Top {TOP_MODELS} models by spend"
    )
    return Section("models", "Top models", figures.html(chart, "top-models") + table_html(columns, rows, "top-models"))


def _week_over_week(con: duckdb.DuckDBPyConnection, last: date, figures: Figures) -> Section:
    params = {"this_start": last - timedelta(days=6), "last": last, "prev_start": last - timedelta(days=13)}
    columns, rows = _query(
        con,
        f"""
        WITH weeks AS (
            SELECT team,
                coalesce(sum(cost_usd) FILTER (WHERE usage_date >= $this_start), 0) AS this_week_usd,
                coalesce(sum(cost_usd) FILTER (WHERE usage_date < $this_start), 0) AS previous_week_usd
            FROM {SPEND} WHERE usage_date BETWEEN $prev_start AND $last GROUP BY team
        )
        SELECT team, this_week_usd, previous_week_usd, this_week_usd - previous_week_usd AS change_usd,
            CASE WHEN previous_week_usd <> 0
                THEN CAST(round((this_week_usd - previous_week_usd) * 100 / previous_week_usd, 1) AS DECIMAL(18, 1))
            END AS change_pct
        FROM weeks ORDER BY abs(this_week_usd - previous_week_usd) DESC, team
        """,
        params,
    )
    intro = (
        f'<p class="subtitle">{params["this_start"]} .. {last} against {params["prev_start"]} .. '
        f"{params['this_start'] - timedelta(days=1)}.</p>"
    )
    shown = rows[:TOP_CHANGES]
    title = "Change against the previous week" + (f" (the {TOP_CHANGES} largest)" if len(rows) > TOP_CHANGES else "")
    chart = horizontal_bars([r[0] for r in shown], [float(r[3]) for r in shown], title)
    body = intro + (figures.html(chart, "wow-chart") if rows else "") + table_html(columns, rows, "week-over-week")
    return Section("wow", "Week over week, per team", body)


def _anomaly_context(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> go.Figure:
    """The daily spend of each flagged team and provider (the most recent few), flagged days marked."""
    pairs = f"""
        SELECT team, provider FROM {ANOMALIES_TABLE} WHERE is_anomaly AND {IN_WINDOW}
        GROUP BY ALL ORDER BY max(usage_date) DESC, team, provider LIMIT {ANOMALY_CONTEXT_SERIES}
    """
    rows = con.execute(
        f"""
        SELECT t.team || ' / ' || t.provider, t.usage_date, CAST(t.cost_usd AS DOUBLE), coalesce(a.is_anomaly, false)
        FROM {SPEND} t JOIN ({pairs}) USING (team, provider)
        LEFT JOIN {ANOMALIES_TABLE} a USING (usage_date, team, provider)
        WHERE t.{IN_WINDOW} ORDER BY 1, 2
        """,
        params,
    ).fetchall()
    figure = go.Figure()
    for name in dict.fromkeys(r[0] for r in rows):
        series = [r for r in rows if r[0] == name]
        figure.add_trace(go.Scatter(x=[r[1] for r in series], y=[r[2] for r in series], name=name, mode="lines"))
        flagged = [r for r in series if r[3]]
        figure.add_trace(
            go.Scatter(
                x=[r[1] for r in flagged],
                y=[r[2] for r in flagged],
                name=f"{name}: flagged",
                mode="markers",
                marker={"size": 11, "symbol": "circle-open", "line": {"width": 2}},
            )
        )
    figure.update_layout(title="Flagged team and provider series (daily USD)", yaxis_title="USD")
    return figure


def _anomalies(con: duckdb.DuckDBPyConnection, params: dict[str, Any], figures: Figures) -> Section:
    if not table_exists(con, ANOMALIES_TABLE):
        note = (
            f'<p class="note" id="anomalies-missing">No anomaly table ({ANOMALIES_TABLE}) in this DuckDB file yet: '
            "anomalies appear here once the pipeline scores spend.</p>"
        )
        return Section("anomalies", "Anomalies", note)
    columns, rows = _query(
        con,
        f"""
        SELECT a.usage_date, a.team, a.provider, a.cost_usd, a.expected_usd, a.score, a.reason,
            (SELECT list(t.cost_usd ORDER BY t.usage_date) FROM {SPEND} t
             WHERE t.team = a.team AND t.provider = a.provider
               AND t.usage_date BETWEEN a.usage_date - 7 AND a.usage_date - 1) AS previous_7_days_usd_list,
            (SELECT sum(t.cost_usd) FROM {SPEND} t WHERE t.usage_date = a.usage_date) AS day_total_usd
        FROM {ANOMALIES_TABLE} a
        WHERE a.is_anomaly AND a.{IN_WINDOW}
        ORDER BY a.usage_date DESC, a.score DESC LIMIT 50
        """,
        params,
    )
    columns = [c.removesuffix("_usd_list") + " (USD)" if c.endswith("_usd_list") else c for c in columns]
    if not rows:
        return Section("anomalies", "Anomalies", '<p class="note">No anomaly flagged in the window.</p>')
    intro = "<p>Each flagged day with what was expected, the 7 days before it and the whole day's spend.</p>"
    chart = figures.html(_anomaly_context(con, params), "anomaly-context")
    return Section("anomalies", "Anomalies", intro + chart + table_html(columns, rows, "anomalies"))


def _unallocated(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> Section:
    total, unallocated = con.execute(
        f"SELECT coalesce(sum(cost_usd), 0), coalesce(sum(cost_usd) FILTER (WHERE team = '{UNALLOCATED_TEAM}'), 0) "
        f"FROM {LINES} WHERE {IN_WINDOW}",
        params,
    ).fetchone() or (Decimal(0), Decimal(0))
    share = unallocated / total if total else Decimal(0)
    keys = [c for c in ALLOCATION_KEY_COLUMNS.values() if c != "model"]
    as_text = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in keys)
    no_key = " AND ".join(f"{c} IS NULL" for c in keys)
    columns, rows = _query(
        con,
        f"""
        WITH unallocated AS (
            SELECT provider, cost_usd, model, {as_text} FROM {LINES}
            WHERE team = '{UNALLOCATED_TEAM}' AND {IN_WINDOW}
        ),
        keyed AS (
            SELECT provider, key_column, value, cost_usd
            FROM (UNPIVOT (SELECT provider, cost_usd, {", ".join(keys)} FROM unallocated)
                  ON {", ".join(keys)} INTO NAME key_column VALUE value)
            UNION ALL
            SELECT provider, CASE WHEN model IS NULL THEN '*' ELSE 'model' END, coalesce(model, '*'), cost_usd
            FROM unallocated WHERE {no_key}
        )
        SELECT provider, key_column, value, sum(cost_usd) AS cost_usd, count(*) AS lines
        FROM keyed GROUP BY ALL ORDER BY cost_usd DESC, provider, key_column, value LIMIT {TOP_UNMAPPED_KEYS}
        """,
        params,
    )
    rows = [(*row, f"{row[0]},{DIMENSION_OF.get(row[1], row[1])},{row[2]},<team>,,,,") for row in rows]
    unallocated_html = usd_html(unallocated, attrs=' id="unallocated-total"')
    summary = (
        f"<p>Unallocated: {unallocated_html} USD of "
        f'{usd_html(total)} USD, <strong id="unallocated-share">{share:.2%}</strong> of the window.</p>'
        "<p>The keys of the unallocated lines, largest first. A line carries several keys (a project and an "
        "API key, say); map any one of them in <code>org_mapping.csv</code>, e.g. with the suggested row.</p>"
    )
    return Section(
        "unallocated",
        "Unallocated spend",
        summary + table_html([*columns, "org_mapping.csv row"], rows, "unmapped-keys"),
    )


def _inventory(con: duckdb.DuckDBPyConnection) -> Section:
    if not table_exists(con, SOURCE_INVENTORY.qualified_name):
        return Section("inventory", "Source inventory", '<p class="note">No source inventory built yet.</p>')
    columns, rows = _query(
        con,
        "SELECT provider, title, billing_model, has_api, configured, how_ingested, last_data_date, data_lag, "
        f"days_since_data, spend_30d_usd, coverage_gap FROM {SOURCE_INVENTORY.qualified_name}",
        {},
    )
    gaps = sum(1 for row in rows if row[-1])
    intro = (
        f"<p>Every source the product knows; {gaps} of {len(rows)} have a coverage gap (highlighted). "
        "Spend over the 30 days ending the report's last day; the invoice seed's spend is on its vendors' rows.</p>"
    )
    return Section(
        "inventory", "Source inventory and coverage gaps", intro + table_html(columns, rows, "inventory", 10)
    )


def _unit_costs(con: duckdb.DuckDBPyConnection) -> Section:
    if not table_exists(con, UNIT_COSTS_TABLE):
        note = f'<p class="note" id="unit-costs-missing">No unit-cost table ({UNIT_COSTS_TABLE}) yet.</p>'
        return Section("unit-costs", "Unit costs", note)
    present = {
        name
        for (name,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            UNIT_COSTS_TABLE.split("."),
        ).fetchall()
    }
    shown = ", ".join(c for c in UNIT_COST_COLUMNS if c in present) or "*"
    columns, rows = _query(
        con, f"SELECT {shown} FROM {UNIT_COSTS_TABLE} ORDER BY month DESC, cost_usd DESC LIMIT {UNIT_COST_ROWS}", {}
    )
    intro = (
        "<p>Per month, team, provider and model: tokens beside the billed cost (from the providers' usage "
        "endpoints, or the cost lines' own token quantities), USD per million tokens overall and by direction, "
        "what cache reads saved against the uncached input price, and USD per active seat for seat products. "
        f"Latest months first, the {UNIT_COST_ROWS} largest rows; the full table is main.unit_costs.</p>"
    )
    return Section("unit-costs", "Unit costs", intro + table_html(columns, rows, "unit-costs"))


def render_report(con: duckdb.DuckDBPyConnection, as_of: date, days: int = REPORT_DAYS) -> str:
    """The report's HTML for the `days` days ending `as_of` (inclusive)."""
    for table in (COST_LINE_ITEMS, TEAM_DAILY_SPEND):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.schema}")
        con.execute(table.ddl())
    first = as_of - timedelta(days=days - 1)
    first_with_data = con.execute(
        f"SELECT min(usage_date) FROM {SPEND} WHERE usage_date BETWEEN $first AND $last",
        {"first": first, "last": as_of},
    ).fetchone()
    if first_with_data and first_with_data[0]:  # a shorter history: the window starts with the data
        first = first_with_data[0]
    params = {"first": first, "last": as_of}
    figures = Figures()
    sections = [
        _overview(con, params),
        _daily(con, params, figures),
        _models(con, params, figures),
        _week_over_week(con, as_of, figures),
        _anomalies(con, params, figures),
        _unallocated(con, params),
        _inventory(con),
        _unit_costs(con),
    ]
    nav = " · ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{s.body}</section>' for s in sections)
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>AI spend report {first} .. {as_of}</title><style>{STYLE}</style></head><body>"
        f'<h1>AI spend</h1><p class="subtitle" id="window" data-first="{first}" data-last="{as_of}">'
        f"{first} .. {as_of} ({(as_of - first).days + 1} UTC days) · generated {generated} · "
        "amounts in USD, exact on hover</p>"
        f"<nav>{nav}</nav>{body}</body></html>"
    )


def write_report(con: duckdb.DuckDBPyConnection, path: str | Path, as_of: date, days: int = REPORT_DAYS) -> Path:
    """Write the report to `path` whole (a reader never sees half a file) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(render_report(con, as_of, days), encoding="utf-8")
    os.replace(partial, path)
    return path
