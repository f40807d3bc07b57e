"""aispend-pipeline: daily AI spend from every bill, attributed to teams, in one DuckDB file."""

__version__ = "0.1.0"
