"""The README's source table, generated from the registry and the known vendors, so no source is left out.

`python -m aispend_pipeline.sources.docs README.md` rewrites the table between the marker comments; a test
fails when the README's table differs from the generated one.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aispend_pipeline.sources.base import Source
from aispend_pipeline.sources.manual_invoices.vendors import KNOWN_VENDORS

START_MARKER = "<!-- sources:start -->"
END_MARKER = "<!-- sources:end -->"
HEADER = (
    "| source | provider | billing | how its spend gets in today | enabled by | raw table |",
    "|---|---|---|---|---|---|",
)


def source_folder(source: Source) -> str:
    """The source's folder in the repository (`sources/<name>/`: one folder per registered source)."""
    return f"aispend_pipeline/sources/{source.name}"


def _settings(names: tuple[str, ...]) -> str:
    return " and ".join(f"`{name}`" for name in names) or "-"


def source_table_markdown(sources: tuple[Source, ...] | None = None) -> str:
    """One row per source of the inventory: every registered source, then every known manual vendor."""
    if sources is None:
        from aispend_pipeline.sources.registry import SOURCES

        sources = SOURCES
    rows = []
    invoices = next((s for s in sources if not s.has_api), None)
    for source in sources:
        readme = f"[{source.name}/README.md]({source_folder(source)}/README.md)"
        how = "its billing API" if source.has_api else "`manual_invoices.csv` rows, for any vendor with no API"
        enabled = _settings(source.enabled_by) if source.has_api else "`AISPEND_SEEDS_DIR`"
        rows.append(
            f"| {source.title} | `{source.name}` | {source.billing_model} | {how}, {source.data_lag} (see {readme}) "
            f"| {enabled} | `{source.raw_table.qualified_name}` |"
        )
    for vendor in KNOWN_VENDORS:
        table = f"`{invoices.raw_table.qualified_name}`" if invoices else "-"
        rows.append(
            f"| {vendor.title} | `{vendor.slug}` | {vendor.billing_model} | manual invoice, monthly: a "
            f"`manual_invoices.csv` row with vendor `{vendor.title}` | `AISPEND_SEEDS_DIR` | {table} |"
        )
    return "\n".join([*HEADER, *rows])


def with_source_table(text: str) -> str:
    """`text` (the README) with the generated table between the markers."""
    before, start, rest = text.partition(START_MARKER)
    _, end, after = rest.partition(END_MARKER)
    if not start or not end:
        raise ValueError(f"the README has no {START_MARKER} ... {END_MARKER} block for the source table")
    return f"{before}{START_MARKER}\n{source_table_markdown()}\n{END_MARKER}{after}"


if __name__ == "__main__":
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    readme.write_text(with_source_table(readme.read_text(encoding="utf-8")), encoding="utf-8")
