"""Every billing source, registered once here."""

from aispend_pipeline.sources.anthropic.source import SOURCE as ANTHROPIC
from aispend_pipeline.sources.aws.source import SOURCE as AWS
from aispend_pipeline.sources.azure.source import SOURCE as AZURE
from aispend_pipeline.sources.base import Source
from aispend_pipeline.sources.gcp.source import SOURCE as GCP
from aispend_pipeline.sources.github_copilot.source import SOURCE as GITHUB_COPILOT
from aispend_pipeline.sources.manual_invoices.source import SOURCE as MANUAL_INVOICES
from aispend_pipeline.sources.openai.source import SOURCE as OPENAI
from aispend_pipeline.sources.openrouter.source import SOURCE as OPENROUTER

SOURCES: tuple[Source, ...] = (OPENAI, ANTHROPIC, AWS, AZURE, GCP, GITHUB_COPILOT, OPENROUTER, MANUAL_INVOICES)
