"""The report and the source inventory as plain functions over a DuckDB connection (no run needed)."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb

from aispend_pipeline.marts import source_inventory
from aispend_pipeline.marts.source_inventory import build_source_inventory
from aispend_pipeline.report import write_report
from aispend_pipeline.report.html import usd_html
from aispend_pipeline.seed_files import vendor_slug
from aispend_pipeline.settings import report_path, settings_problems
from aispend_pipeline.sources.manual_invoices.vendors import KNOWN_VENDORS
from aispend_pipeline.sources.openai.source import SOURCE as OPENAI
from aispend_pipeline.sources.registry import SOURCES
from aispend_pipeline_tests.ids import line_uuid

A, B = line_uuid("a"), line_uuid("b")

AS_OF = date(2026, 11, 30)


def test_an_empty_database_gives_a_whole_report_and_an_inventory_of_gaps(tmp_path: Path) -> None:
    with duckdb.connect(":memory:") as con:
        summary = build_source_inventory(con, AS_OF, {s.name: False for s in SOURCES})
        path = write_report(con, tmp_path / "report.html", AS_OF)
    text = path.read_text(encoding="utf-8")
    for anchor in ("overview", "daily", "models", "wow", "anomalies", "unallocated", "inventory", "unit-costs"):
        assert f'<section id="{anchor}">' in text
    assert 'data-exact="0" title="0 USD">0.00<' in text and "window.PlotlyConfig" in text
    assert summary.rows == len(SOURCES) + len(KNOWN_VENDORS) and summary.spend_30d_usd == 0
    gaps = dict(summary.gaps)
    assert gaps["openai"] == "not configured: set OPENAI_ADMIN_KEY"
    assert gaps["cursor"].startswith("not covered") and gaps["manual_invoices"] == "no data up to 2026-11-30"
    assert not list(tmp_path.glob(".*partial")), "written whole, no partial file left"


def test_gaps_name_stale_and_missing_data() -> None:
    """A configured daily source with no data for a month, and a vendor whose last invoice is old, are gaps."""
    with duckdb.connect(":memory:") as con:
        build_source_inventory(con, AS_OF, {})  # creates the tables it reads
        con.execute(
            "INSERT INTO main.cost_line_items (cost_line_id, line_id, usage_date, provider, service, charge_category, "
            "cost_usd, data_lag, cost_source, team, allocation_method, allocation_share) VALUES "
            f"('{A}', '{A}', '2026-11-05', 'openai', 'OpenAI API', 'Usage', 1.25, 'daily', 'billed', 'x', 'direct', 1),"
            f" ('{B}', '{B}', '2026-10-31', 'cursor', 'Cursor', 'Purchase', 80, 'monthly', 'invoice', 'x', 'direct', 1)"
        )
        configured = {s.name: True for s in SOURCES}
        on_time = dict(build_source_inventory(con, date(2026, 11, 8), configured).gaps)
        later = dict(build_source_inventory(con, date(2026, 12, 15), configured).gaps)
        much_later = dict(build_source_inventory(con, date(2027, 1, 31), configured).gaps)
    assert "openai" not in on_time and "cursor" not in on_time
    assert later["openai"] == "no data in 30 days"
    assert "cursor" not in later, "45 days after its last invoiced day a monthly vendor is still on time"
    assert much_later["cursor"] == "last data 2026-10-31, 92 days ago; expected monthly"
    assert much_later["anthropic"] == "no data up to 2027-01-31"
    stale = dict(build_source_inventory(duckdb.connect(":memory:"), AS_OF, configured).gaps)
    assert stale["openai"] == "no data up to 2026-11-30"


def test_a_registered_source_takes_the_place_of_the_known_vendor_of_its_slug(monkeypatch) -> None:
    cursor_api = dataclasses.replace(OPENAI, name="cursor", title="Cursor Admin API", billing_model="seats")
    monkeypatch.setattr(source_inventory, "SOURCES", (*SOURCES, cursor_api))
    with duckdb.connect(":memory:") as con:
        build_source_inventory(con, AS_OF, {"cursor": True})
        rows = con.execute(
            "SELECT title, source_kind, has_api, configured, how_ingested FROM main.source_inventory "
            "WHERE provider = 'cursor'"
        ).fetchall()
    assert rows == [("Cursor Admin API", "api source", True, True, "api")]


def test_each_known_vendor_title_on_an_invoice_lands_under_its_slug() -> None:
    for vendor in KNOWN_VENDORS:
        assert vendor_slug(vendor.title) == vendor.slug, vendor.title


def test_money_cells_show_cents_and_keep_the_exact_amount() -> None:
    assert usd_html(Decimal("1234.567890123400")) == (
        '<span class="usd" data-exact="1234.5678901234" title="1234.5678901234 USD">1,234.57</span>'
    )
    assert ">-0.01<" in usd_html(Decimal("-0.005"))


def test_the_report_goes_beside_the_database_unless_a_path_is_named(tmp_path: Path) -> None:
    assert report_path("data/aispend.duckdb", {}) == Path("data/aispend-report.html")
    assert report_path("x.duckdb", {"AISPEND_REPORT_PATH": "out/r.html"}) == Path("out/r.html")
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    env = {"AISPEND_SEEDS_DIR": str(seeds), "AISPEND_DUCKDB_PATH": str(tmp_path / "a.duckdb")}
    assert settings_problems({**env, "AISPEND_REPORT_PATH": str(tmp_path / "r.html")}) == []
    (problem,) = settings_problems({**env, "AISPEND_REPORT_PATH": str(tmp_path)})
    assert problem.startswith("AISPEND_REPORT_PATH") and "is a directory" in problem


def test_every_known_billing_model_is_one_the_inventory_allows() -> None:
    allowed = next(c.allowed for c in source_inventory.SOURCE_INVENTORY.columns if c.name == "billing_model")
    assert {v.billing_model for v in KNOWN_VENDORS} | {s.billing_model for s in SOURCES} <= set(allowed or ())


def test_the_daily_chart_draws_the_top_teams_and_sums_the_rest_as_one_series(tmp_path: Path) -> None:
    from aispend_pipeline.report.report import TOP_SERIES
    from aispend_pipeline.schemas.line_items import TEAM_DAILY_SPEND

    teams = TOP_SERIES + 8
    with duckdb.connect(":memory:") as con:
        con.execute(TEAM_DAILY_SPEND.ddl())
        con.execute(
            f"INSERT INTO {TEAM_DAILY_SPEND.qualified_name} "
            "SELECT DATE '2026-11-28' + CAST(d AS INTEGER), 'team-' || lpad(CAST(t AS VARCHAR), 2, '0'), 'openai', "
            "100 - t, 100 - t, 1 FROM range(3) days(d), range(1, $teams + 1) teams(t)",
            {"teams": teams},
        )
        text = write_report(con, tmp_path / "report.html", AS_OF).read_text(encoding="utf-8")
    daily = text.split('<section id="daily">', 1)[1].split("</section>", 1)[0]
    drawn = {f"team-{t:02d}" for t in range(1, teams + 1) if f'"name":"team-{t:02d}"' in daily}
    assert drawn == {f"team-{t:02d}" for t in range(1, TOP_SERIES + 1)}, "the largest teams, each on its own"
    assert '"name":"other (8)"' in daily
    # The other teams' spend is still in the chart: (100 - 13) + ... + (100 - 20) a day, summed as one bar.
    assert f'"y":[{float(sum(100 - t for t in range(TOP_SERIES + 1, teams + 1)))}' in daily.replace(" ", "")
