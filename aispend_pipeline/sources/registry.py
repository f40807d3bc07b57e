"""Every billing source, registered once here."""

from aispend_pipeline.sources.anthropic.source import SOURCE as ANTHROPIC
from aispend_pipeline.sources.azure.source import SOURCE as AZURE
from aispend_pipeline.sources.base import Source
from aispend_pipeline.sources.gcp.source import SOURCE as GCP
from aispend_pipeline.sources.manual_invoices.source import SOURCE as MANUAL_INVOICES
from aispend_pipeline.sources.openai.source import SOURCE as OPENAI

SOURCES: tuple[Source, ...] = (OPENAI, ANTHROPIC, GCP, AZURE, MANUAL_INVOICES)
