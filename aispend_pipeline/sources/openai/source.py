"""OpenAI as a pipeline source: resource, raw table and normalisation to line items."""

from __future__ import annotations

from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.settings import env_or
from aispend_pipeline.sources.base import AdminKeySourceResource, FocusProvider, Source
from aispend_pipeline.sources.openai.client import DEFAULT_BASE_URL, OpenAICostsClient
from aispend_pipeline.sources.openai.usage import OpenAIUsageClient

KEY_COLUMNS = ("usage_date", "project_id", "line_item")

RAW_TABLE = Table(
    "raw",
    "openai_costs",
    (
        Column("usage_date", "DATE", nullable=False),
        Column("project_id"),
        Column("line_item"),
        Column("amount_usd", DECIMAL, nullable=False),
        Column("quantity", DECIMAL),
        Column("quantity_unit"),
        Column("line_ordinal", "BIGINT", nullable=False),
    ),
    description="OpenAI /organization/costs results, one row per day, project and line item.",
    unique_key=(*KEY_COLUMNS, "line_ordinal"),
)

USAGE_KEY_COLUMNS = ("usage_date", "project_id", "model")

USAGE_TABLE = Table(
    "raw",
    "openai_usage",
    (
        Column("usage_date", "DATE", nullable=False),
        Column("project_id"),
        Column("model"),
        Column("input_tokens", "BIGINT", nullable=False, description="Includes cached and cache-write tokens."),
        Column("input_cached_tokens", "BIGINT"),
        Column("input_cache_write_tokens", "BIGINT"),
        Column("input_uncached_tokens", "BIGINT", description="Absent on older data: input - cached - writes."),
        Column("output_tokens", "BIGINT", nullable=False),
        Column("num_model_requests", "BIGINT", nullable=False),
        Column("line_ordinal", "BIGINT", nullable=False),
    ),
    description="OpenAI /organization/usage/completions results (tokens, no money), per day, project and model.",
    unique_key=(*USAGE_KEY_COLUMNS, "line_ordinal"),
)

# Tokens by the cost lines' kinds: the "input" line bills uncached input (input_tokens minus cached and
# cache-write tokens when the newer input_uncached_tokens is absent), "cached input" the cache reads.
USAGE_TOKENS_SQL = """
SELECT 'openai' AS provider, usage_date, project_id, CAST(NULL AS VARCHAR) AS workspace_id, model,
    coalesce(input_uncached_tokens,
             input_tokens - coalesce(input_cached_tokens, 0) - coalesce(input_cache_write_tokens, 0)) AS input,
    coalesce(input_cached_tokens, 0) AS cache_read,
    coalesce(input_cache_write_tokens, 0) AS cache_write,
    output_tokens AS output
FROM raw.openai_usage
"""

NORMALISE_SQL = """
SELECT
    md5(to_json(['openai', CAST(usage_date AS VARCHAR), project_id, line_item, CAST(line_ordinal AS VARCHAR)]))
        AS line_id,
    usage_date,
    'openai' AS provider,
    'OpenAI API' AS service,
    'Usage' AS charge_category,
    line_item AS charge_description,
    CASE WHEN strpos(line_item, ', ') > 0 THEN split_part(line_item, ', ', 1) END AS model,
    CASE WHEN strpos(line_item, ', ') = 0 THEN NULL
         WHEN lower(split_part(line_item, ', ', 2)) LIKE '%input%' THEN 'input'
         WHEN lower(split_part(line_item, ', ', 2)) LIKE '%output%' THEN 'output' END AS token_direction,
    CASE WHEN strpos(line_item, ', ') > 0 AND lower(split_part(line_item, ', ', 2)) LIKE '%cached%'
         THEN 'read' END AS token_cache_action,
    amount_usd AS cost_usd,
    quantity,
    quantity_unit AS unit,
    'daily' AS data_lag,
    'billed' AS cost_source,
    project_id
FROM raw.openai_costs
WHERE usage_date >= $start AND usage_date < $end
"""


class OpenAIResource(AdminKeySourceResource):
    """OpenAI Admin API (`OPENAI_ADMIN_KEY`, endpoint `OPENAI_BASE_URL`)."""

    enabled_by = "OPENAI_ADMIN_KEY"
    client_class = OpenAICostsClient
    raw_table = RAW_TABLE
    key_columns = KEY_COLUMNS
    usage_client_class = OpenAIUsageClient
    usage_table = USAGE_TABLE
    usage_key_columns = USAGE_KEY_COLUMNS
    base_url: str = DEFAULT_BASE_URL


SOURCE = Source(
    name="openai",
    focus=FocusProvider("OpenAI", "Organization"),
    title="OpenAI organisation costs",
    kinds=frozenset({"openai", "duckdb"}),
    raw_table=RAW_TABLE,
    normalise_sql=NORMALISE_SQL,
    resource_key="openai",
    enabled_by=("OPENAI_ADMIN_KEY",),
    simulator="aispend_pipeline.sources.openai.simulator:OpenAICostsSimulator",
    companion_tables=(USAGE_TABLE,),
    usage_tokens_sql=USAGE_TOKENS_SQL,
    build_resource=lambda: OpenAIResource(
        admin_key=env_or("OPENAI_ADMIN_KEY"), base_url=env_or("OPENAI_BASE_URL", DEFAULT_BASE_URL)
    ),
)
