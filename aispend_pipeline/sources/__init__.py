"""Every billing source, registered once here; each lives in its own folder."""

from aispend_pipeline.sources import anthropic, manual_invoices, openai
from aispend_pipeline.sources.base import Source

SOURCES: tuple[Source, ...] = (openai.SOURCE, anthropic.SOURCE, manual_invoices.SOURCE)

__all__ = ["SOURCES", "Source"]
