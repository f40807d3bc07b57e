"""Anthropic organisation costs (admin key): see README.md in this folder."""
