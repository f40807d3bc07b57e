"""The FOCUS columns' SQL on single lines: tag keys from the settings, provider names from the registry."""

from __future__ import annotations

import json

import duckdb

from aispend_pipeline.marts.focus import focus_select_sql
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS
from aispend_pipeline_tests.ids import line_uuid


def focus_row(env: dict[str, str], **line: str) -> dict[str, object]:
    con = duckdb.connect()
    con.execute(COST_LINE_ITEMS.ddl())
    base = {
        "cost_line_id": line_uuid("l1"),
        "line_id": line_uuid("l1"),
        "usage_date": "2026-10-01",
        "service": "Vertex AI",
    }
    values = {**base, "charge_category": "Usage", "cost_usd": "1.5", "data_lag": "daily", "cost_source": "billed"}
    values |= {"team": "search", "allocation_method": "direct", "allocation_share": "1", **line}
    con.execute(
        f"INSERT INTO {COST_LINE_ITEMS.qualified_name} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
        list(values.values()),
    )
    cursor = con.execute(focus_select_sql(env=env))
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))


def test_tags_use_each_providers_tag_key_setting():
    env = {"AISPEND_GCP_LABEL_KEY": "cost'team"}
    assert json.loads(focus_row(env, provider="gcp", team_tag="search")["Tags"]) == {"cost'team": "search"}
    assert json.loads(focus_row(env, provider="azure", team_tag="search")["Tags"]) == {"team": "search"}
    assert json.loads(focus_row(env, provider="gcp")["Tags"]) == {}


def test_provider_names_come_from_the_table_and_unknown_vendors_are_title_cased():
    row = focus_row({}, provider="aws")
    assert (row["ProviderName"], row["PublisherName"], row["InvoiceIssuerName"]) == ("Amazon Web Services",) * 3
    assert focus_row({}, provider="github_copilot")["ProviderName"] == "GitHub"
    unknown = focus_row({}, provider="acme_voice_ai", cost_source="invoice", data_lag="monthly")
    assert (unknown["ProviderName"], unknown["BillingAccountId"], unknown["BillingAccountType"]) == (
        "Acme Voice Ai",
        "acme_voice_ai",
        "Vendor Account",
    )


def test_every_registered_source_and_known_vendor_brings_its_focus_provider_name():
    from aispend_pipeline.sources.manual_invoices.vendors import KNOWN_VENDORS
    from aispend_pipeline.sources.registry import SOURCES

    expected = {s.name: s.focus.name for s in SOURCES if s.focus} | {v.slug: v.focus.name for v in KNOWN_VENDORS}
    assert {s.name for s in SOURCES if s.has_api} <= set(expected)
    for provider, name in expected.items():
        assert focus_row({}, provider=provider)["ProviderName"] == name, provider


def test_a_source_with_an_api_must_say_how_it_appears_in_focus():
    import dataclasses

    import pytest

    from aispend_pipeline.sources.registry import SOURCES

    with pytest.raises(ValueError, match="'acme' has an API but no `focus`"):
        dataclasses.replace(SOURCES[0], name="acme", focus=None)
