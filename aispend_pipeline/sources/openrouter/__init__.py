"""OpenRouter activity (management key): see README.md in this folder."""
