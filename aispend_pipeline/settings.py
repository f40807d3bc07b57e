"""Settings read from the environment as Dagster `EnvVar`s (resolved at run time, never stored)."""

import dagster as dg

DEFAULT_DUCKDB_PATH = "data/aispend.duckdb"
DEFAULT_SEEDS_DIR = "seeds"


def env_or(name: str, default: str | None = None) -> dg.EnvVar | str | None:
    """`EnvVar(name)` when the variable is set, else the default (None: the source stays disabled)."""
    return dg.EnvVar(name) if dg.EnvVar(name).get_value() else default
