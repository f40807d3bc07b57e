"""The source inventory through a real run: every known source once, configured from the environment,
30-day spend and last data day exactly as cost_line_items says."""

from __future__ import annotations

from datetime import date, timedelta

from aispend_pipeline.sources.manual_invoices.vendors import KNOWN_VENDORS
from aispend_pipeline.sources.registry import SOURCES

FIRST, LAST = date(2026, 10, 20), date(2026, 11, 5)
INVOICES = """
vendor,service,invoice_month,amount,currency,team,cost_centre,charge_category,notes
Cursor,Cursor Business seats,2026-10,2480.00,USD,platform,CC-100,Purchase,
Acme Voice AI,Voice minutes,2026-10,310.31,USD,support,CC-220,Usage,only in the seed
"""


def inventory(pipeline) -> dict[str, dict[str, object]]:
    cursor = pipeline.db.rows("SELECT * FROM main.source_inventory", {})
    names = [r[0] for r in pipeline.db.rows("SELECT column_name FROM (DESCRIBE main.source_inventory)", {})]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor}


def test_every_known_source_once_configured_from_the_environment_with_exact_30_day_spend(pipeline, tmp_path):
    pipeline.monkeypatch.delenv("ANTHROPIC_ADMIN_KEY")
    pipeline.monkeypatch.setenv("AISPEND_REPORT_PATH", str(tmp_path / "elsewhere" / "report.html"))
    pipeline.write_seed("manual_invoices.csv", INVOICES)
    ok, reason = pipeline.run(FIRST, LAST)
    assert ok, reason

    rows = pipeline.db.rows("SELECT provider FROM main.source_inventory", {})
    providers = [p for (p,) in rows]
    assert len(providers) == len(set(providers)), "one row per provider"
    expected = {s.name for s in SOURCES} | {v.slug for v in KNOWN_VENDORS} | {"acme_voice_ai"}
    assert set(providers) == expected
    found = inventory(pipeline)

    assert found["openai"]["configured"] is True and found["openai"]["how_ingested"] == "api"
    assert found["anthropic"]["configured"] is False
    assert found["anthropic"]["coverage_gap"] == "not configured: set ANTHROPIC_ADMIN_KEY"
    assert found["anthropic"]["spend_30d_usd"] == 0 and found["anthropic"]["last_data_date"] is None
    assert found["acme_voice_ai"]["source_kind"] == "invoice vendor"
    assert found["acme_voice_ai"]["title"] == "Acme Voice AI" and found["acme_voice_ai"]["how_ingested"] == "invoice"
    assert found["cursor"]["configured"] is True and found["cursor"]["billing_model"] == "seats"
    assert found["groq"]["configured"] is False and found["groq"]["how_ingested"] == "not covered"
    assert found["groq"]["coverage_gap"].startswith("not covered")
    assert found["manual_invoices"]["has_api"] is False and found["manual_invoices"]["spend_30d_usd"] is None

    window = {"first": LAST - timedelta(days=29), "last": LAST}
    spend = dict(
        pipeline.db.rows(
            "SELECT provider, sum(cost_usd) FROM main.cost_line_items "
            "WHERE usage_date BETWEEN $first AND $last GROUP BY 1",
            window,
        )
    )
    assert spend["openai"] > 0 and spend["cursor"] > 0 and spend["acme_voice_ai"] > 0
    for provider, amount in spend.items():
        assert found[provider]["spend_30d_usd"] == amount, provider
    total = sum(r["spend_30d_usd"] or 0 for r in found.values())
    assert total == sum(spend.values()), "the invoice seed's row does not count its vendors twice"

    last_days = dict(pipeline.db.rows("SELECT provider, max(usage_date) FROM main.cost_line_items GROUP BY 1", {}))
    assert found["openai"]["last_data_date"] == last_days["openai"] == LAST
    assert found["cursor"]["last_data_date"] == date(2026, 10, 31) == last_days["cursor"]
    assert found["openai"]["days_since_data"] == 0 and found["openai"]["coverage_gap"] is None
    assert found["cursor"]["days_since_data"] == 5 and found["cursor"]["data_lag"] == "monthly"
    assert all(r["as_of"] == LAST for r in found.values())

    report = tmp_path / "elsewhere" / "report.html"
    assert report.is_file(), "AISPEND_REPORT_PATH names where the report goes"
    assert not (pipeline.db.path.parent / "aispend-report.html").exists()
    assert "Acme Voice AI" in report.read_text()
