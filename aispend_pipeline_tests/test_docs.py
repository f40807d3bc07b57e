"""The README's source table is the registry's: a new source or vendor cannot be left out of the docs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from aispend_pipeline.sources.docs import END_MARKER, START_MARKER, source_folder, source_table_markdown
from aispend_pipeline.sources.manual_invoices.vendors import KNOWN_VENDORS
from aispend_pipeline.sources.registry import SOURCES

REPO = Path(__file__).resolve().parents[1]


def readme_table() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text.split(START_MARKER, 1)[1].split(END_MARKER, 1)[0].strip()


def test_the_readme_source_table_is_the_generated_one() -> None:
    assert readme_table() == source_table_markdown(), (
        "README.md's source table is out of date: run `python -m aispend_pipeline.sources.docs README.md`"
    )


def test_every_source_and_vendor_has_a_row_saying_how_its_spend_gets_in() -> None:
    rows = source_table_markdown().splitlines()[2:]
    assert len(rows) == len(SOURCES) + len(KNOWN_VENDORS)
    for source in SOURCES:
        (row,) = [r for r in rows if f"| `{source.name}` |" in r]
        assert ("its billing API" in row) == source.has_api
        assert (REPO / source_folder(source) / "README.md").is_file(), source.name
    for vendor in KNOWN_VENDORS:
        (row,) = [r for r in rows if f"| `{vendor.slug}` |" in r]
        assert f"manual invoice, monthly: a `manual_invoices.csv` row with vendor `{vendor.title}`" in row


def test_a_newly_registered_source_gets_its_row() -> None:
    new = dataclasses.replace(SOURCES[0], name="acme", title="Acme usage", enabled_by=("ACME_KEY",))
    table = source_table_markdown((*SOURCES, new))
    assert "| Acme usage | `acme` | tokens | its billing API, daily" in table and "`ACME_KEY`" in table
    assert table != readme_table()


def test_the_env_example_names_every_setting_that_enables_a_source() -> None:
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    named = {line.lstrip("# ").split("=", 1)[0] for line in example.splitlines() if "=" in line}
    assert {name for source in SOURCES for name in source.enabled_by} <= named
