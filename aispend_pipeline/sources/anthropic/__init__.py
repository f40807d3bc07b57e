"""Anthropic organisation costs (admin key): see README.md in this folder."""

from aispend_pipeline.sources.anthropic.source import SOURCE, AnthropicResource

__all__ = ["SOURCE", "AnthropicResource"]
