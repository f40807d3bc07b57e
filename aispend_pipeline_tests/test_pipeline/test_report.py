"""The HTML report of a real run: every section, totals equal to the DuckDB file's exactly, the unmapped keys
someone must map, one self-contained file; and the tables other work adds, when they exist."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import duckdb

from aispend_pipeline.report import REPORT_DAYS, write_report

FIRST, LAST = date(2026, 10, 20), date(2026, 11, 5)
WINDOW = {"first": LAST - timedelta(days=REPORT_DAYS - 1), "last": LAST}
SECTIONS = ("overview", "daily", "models", "wow", "anomalies", "unallocated", "inventory", "unit-costs")


class Cells(HTMLParser):
    """Every table's rows as text cells, and every exact amount (`data-exact`) by element id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.exact_rows: dict[str, list[list[str]]] = {}
        self.by_id: dict[str, str] = {}
        self.scripts: list[dict[str, str | None]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            self.scripts.append(named)
        if tag == "table":
            self._table = named.get("id") or ""
            self.tables[self._table], self.exact_rows[self._table] = [], []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
            self.exact_rows[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
            if named.get("data-exact"):
                self.exact_rows[self._table][-1].append(named["data-exact"] or "")
        if named.get("id") and named.get("data-exact"):
            self.by_id[named["id"] or ""] = named["data-exact"] or ""

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None


def parse(text: str) -> Cells:
    cells = Cells()
    cells.feed(text)
    return cells


def test_the_run_writes_a_self_contained_report_whose_totals_are_the_database_totals(pipeline):
    """Then, once the tables other work adds exist, their rows appear too."""
    ok, reason = pipeline.run(FIRST, LAST)
    assert ok, reason
    path = pipeline.db.path.parent / "aispend-report.html"
    text = path.read_text(encoding="utf-8")
    page = parse(text)

    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in text, anchor
    assert not [s for s in page.scripts if s.get("src")], "no external script: readable with no server or network"
    assert not re.search(r"<(?:script|link|img)[^>]+(?:src|href)=[\"']https?:", text)
    assert text.count("window.PlotlyConfig") == 1, "plotly.js embedded once"
    assert text.count('class="plotly-graph-div"') >= 4
    assert 'id="anomalies-missing"' not in text and 'id="anomalies"' in text, "the run's anomalies are shown"

    total = pipeline.db.rows(
        "SELECT sum(cost_usd) FROM main.cost_line_items WHERE usage_date BETWEEN $first AND $last", WINDOW
    )[0][0]
    assert Decimal(page.by_id["total-spend"]) == total
    per_provider = dict(
        pipeline.db.rows(
            "SELECT provider, sum(cost_usd) FROM main.team_daily_spend WHERE usage_date BETWEEN $first AND $last "
            "GROUP BY 1",
            WINDOW,
        )
    )
    shown = {
        row[0]: Decimal(exact[0])
        for row, exact in zip(
            page.tables["totals-by-provider"][1:], page.exact_rows["totals-by-provider"][1:], strict=True
        )
    }
    assert shown == per_provider
    assert sum(Decimal(e[0]) for e in page.exact_rows["totals-by-team"][1:]) == total

    unmapped = pipeline.db.rows(
        "SELECT provider, project_id, sum(cost_usd) FROM main.cost_line_items WHERE team = 'unallocated' "
        "AND project_id IS NOT NULL AND usage_date BETWEEN $first AND $last GROUP BY 1, 2",
        WINDOW,
    )
    assert unmapped, "the example mapping leaves some OpenAI projects unmapped"
    keys = {
        (row[0], row[1], row[2]): Decimal(exact[0])
        for row, exact in zip(page.tables["unmapped-keys"][1:], page.exact_rows["unmapped-keys"][1:], strict=True)
    }
    assert keys, "the top unmapped keys are listed"
    for (provider, column, value), amount in keys.items():
        stored = pipeline.db.rows(
            f"SELECT sum(cost_usd) FROM main.cost_line_items WHERE team = 'unallocated' AND provider = $p "
            f"AND {column} = $v AND usage_date BETWEEN $first AND $last",
            {**WINDOW, "p": provider, "v": value},
        )[0][0]
        assert stored == amount, (provider, column, value)
    suggestions = [row[-1] for row in page.tables["unmapped-keys"][1:]]
    assert suggestions and all(s.endswith(",<team>,,,,") for s in suggestions)
    unallocated = sum((a for *_, a in unmapped), Decimal(0))
    assert Decimal(page.by_id["unallocated-total"]) >= unallocated > 0

    inventory = [row[0] for row in page.tables["inventory"][1:]]
    assert inventory == [p for (p,) in pipeline.db.rows("SELECT provider FROM main.source_inventory", {})]
    this_week = pipeline.db.rows(
        "SELECT sum(cost_usd) FROM main.team_daily_spend WHERE usage_date BETWEEN $a AND $b",
        {"a": LAST - timedelta(days=6), "b": LAST},
    )[0][0]
    assert sum(Decimal(e[0]) for e in page.exact_rows["week-over-week"][1:]) == this_week

    anomalies_and_unit_costs_appear_with_their_context_when_their_tables_exist(pipeline, path.parent / "again.html")


def anomalies_and_unit_costs_appear_with_their_context_when_their_tables_exist(pipeline, report: Path) -> None:
    spike = LAST - timedelta(days=2)
    team, provider, cost = pipeline.db.rows(
        "SELECT team, provider, cost_usd FROM main.team_daily_spend WHERE usage_date = $d ORDER BY cost_usd DESC",
        {"d": spike},
    )[0]
    before = [
        c
        for (c,) in pipeline.db.rows(
            "SELECT cost_usd FROM main.team_daily_spend WHERE team = $t AND provider = $p "
            "AND usage_date BETWEEN $a AND $b ORDER BY usage_date",
            {"t": team, "p": provider, "a": spike - timedelta(days=7), "b": spike - timedelta(days=1)},
        )
    ]
    with duckdb.connect(str(pipeline.db.path)) as con:
        con.execute(
            "CREATE OR REPLACE TABLE main.spend_anomalies AS "
            "SELECT $d::DATE AS usage_date, $t AS team, $p AS provider, "
            "$c::DECIMAL(38, 12) AS cost_usd, 1.5::DECIMAL(38, 12) AS expected_usd, 9.5 AS score, true AS is_anomaly, "
            "'robust z-score 9.5 over the trailing 28 days' AS reason",
            {"d": spike, "t": team, "p": provider, "c": cost},
        )
        con.execute(
            "CREATE OR REPLACE TABLE main.unit_costs AS SELECT '2026-10' AS month, 'search' AS team, "
            "'openai' AS provider, 'gpt-4.1' AS model, 12.345678::DECIMAL(38, 12) AS cost_usd, "
            "1000000::BIGINT AS tokens"
        )
        path = write_report(con, report, LAST)
    text = path.read_text(encoding="utf-8")
    page = parse(text)
    assert 'id="anomaly-context"' in text and f"{team} \\u002f {provider}: flagged" in text  # plotly escapes "/"
    (row,), (exact,) = page.tables["anomalies"][1:], page.exact_rows["anomalies"][1:]
    assert row[:3] == [str(spike), team, provider] and "robust z-score" in row[6]
    assert Decimal(exact[0]) == cost and Decimal(exact[1]) == Decimal("1.5")
    assert row[7] == ", ".join(f"{c:,.2f}" for c in before), "the seven days before it, oldest first"
    assert page.tables["unit-costs"][1][:4] == ["2026-10", "search", "openai", "gpt-4.1"]
    assert page.exact_rows["unit-costs"][1] == ["12.345678"]


def test_the_demo_writes_the_report_and_names_it_in_its_summary(pipeline, capsys):
    import os

    from aispend_pipeline.demo import run_demo

    saved = dict(os.environ)
    try:
        assert run_demo(2) == 0
    finally:  # the demo points the environment at its own simulators
        os.environ.clear()
        os.environ.update(saved)
    report = (pipeline.db.path.parent / "aispend-report.html").resolve()
    assert f"  report: {report}  (open it in a browser)" in capsys.readouterr().out.splitlines()
    assert 'id="total-spend"' in report.read_text(encoding="utf-8")
