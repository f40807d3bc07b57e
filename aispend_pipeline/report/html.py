"""HTML pieces of the report: exact money cells, tables from query rows, plotly figures embedded once."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from aispend_pipeline.core.money import round_to_cent, trimmed_money_text


def is_money_column(name: str) -> bool:
    return name == "cost_usd" or name.endswith("_usd")


def usd_html(amount: Decimal | None, tag: str = "span", attrs: str = "") -> str:
    """Cents for the eye, the exact amount in `data-exact` (and the tooltip), never a float."""
    if amount is None:
        return f"<{tag}{attrs}></{tag}>"
    exact = trimmed_money_text(Decimal(amount))
    shown = f"{round_to_cent(Decimal(amount)):,.2f}"
    return f'<{tag} class="usd"{attrs} data-exact="{exact}" title="{exact} USD">{shown}</{tag}>'


def cell(name: str, value: Any) -> str:
    if is_money_column(name) and (value is None or isinstance(value, Decimal)):
        return usd_html(value, "td")
    if value is None:
        return "<td></td>"
    if name.startswith("usd_per_") and isinstance(value, Decimal):  # a unit price: 4 decimals, exact on hover
        exact = trimmed_money_text(value)
        return f'<td class="num" data-exact="{exact}" title="{exact} USD">{value:,.4f}</td>'
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if name.endswith("_pct") and isinstance(value, Decimal | float):
        return f'<td class="num">{Decimal(value):+.1f} %</td>'
    if isinstance(value, Decimal):
        shown = f"{value:,.0f}" if value == value.to_integral_value() else trimmed_money_text(value)
        return f'<td class="num">{shown}</td>'
    if isinstance(value, float):
        return f'<td class="num">{value:.3g}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, list):
        return f'<td class="small">{html.escape(", ".join(_short(v) for v in value))}</td>'
    if isinstance(value, date):
        return f"<td>{value.isoformat()}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def _short(value: Any) -> str:
    return f"{round_to_cent(value):,.2f}" if isinstance(value, Decimal) else str(value)


def table_html(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str, row_class: int | None = None
) -> str:
    """A table of query rows; `row_class` names a column whose non-empty value marks the row (e.g. a gap)."""
    if not rows:
        return '<p class="note">No rows.</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        marked = row_class is not None and row[row_class] not in (None, "")
        cells = "".join(cell(name, value) for name, value in zip(columns, row, strict=True))
        attrs = ' class="flag"' if marked else ""
        body.append(f"<tr{attrs}>{cells}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


class Figures:
    """Renders plotly figures as divs; the first one carries plotly.js inline, the others reuse it."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, figure: go.Figure, div_id: str) -> str:
        figure.update_layout(template="plotly_white", margin={"l": 50, "r": 20, "t": 40, "b": 40}, height=380)
        self.count += 1
        return pio.to_html(
            figure,
            full_html=False,
            include_plotlyjs=self.count == 1,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )


def stacked_bars(rows: Sequence[tuple[date, str, float]], title: str) -> go.Figure:
    """One bar trace per series of (day, series, amount) rows, stacked per day."""
    series: dict[str, tuple[list[date], list[float]]] = {}
    for day, name, amount in rows:
        days, amounts = series.setdefault(name, ([], []))
        days.append(day)
        amounts.append(amount)
    figure = go.Figure([go.Bar(x=d, y=a, name=n) for n, (d, a) in series.items()])
    figure.update_layout(barmode="stack", title=title, yaxis_title="USD", legend_title_text="")
    return figure


def horizontal_bars(labels: Sequence[str], amounts: Sequence[float], title: str) -> go.Figure:
    figure = go.Figure([go.Bar(x=list(amounts), y=list(labels), orientation="h")])
    figure.update_layout(title=title, xaxis_title="USD", yaxis={"autorange": "reversed"})
    return figure


STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 24px 40px;
       color: #1f2933; background: #fff; }
h1 { margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #d9e2ec; padding-bottom: 4px; }
.subtitle, .note { color: #52606d; } .note { font-style: italic; }
.kpis { display: flex; gap: 24px; margin: 16px 0; }
.kpi { border: 1px solid #d9e2ec; border-radius: 6px; padding: 10px 16px; min-width: 160px; }
.kpi .label { color: #52606d; font-size: 13px; } .kpi .value { font-size: 22px; font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f5f7fa; } td.usd, td.num, span.usd { font-variant-numeric: tabular-nums; }
td.usd, td.num { text-align: right; } td.small { font-size: 11px; color: #52606d; }
tr.flag td { background: #fff5f5; } code { background: #f5f7fa; padding: 1px 4px; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; }
"""
