"""OpenAI organisation costs (admin key): see README.md in this folder."""

from aispend_pipeline.sources.openai.source import SOURCE, OpenAIResource

__all__ = ["SOURCE", "OpenAIResource"]
