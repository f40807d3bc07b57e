"""The FOCUS columns' SQL on single lines: tag keys from the settings, provider names from the one table."""

from __future__ import annotations

import json

import duckdb

from aispend_pipeline.marts.focus import focus_select_sql
from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS


def focus_row(env: dict[str, str], **line: str) -> dict[str, object]:
    con = duckdb.connect()
    con.execute(COST_LINE_ITEMS.ddl())
    base = {"cost_line_id": "l1", "line_id": "l1", "usage_date": "2026-10-01", "service": "Vertex AI"}
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
