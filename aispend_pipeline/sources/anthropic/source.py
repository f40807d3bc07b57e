"""Anthropic as a pipeline source: resource, raw table and normalisation to line items."""

from __future__ import annotations

from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.settings import env_or
from aispend_pipeline.sources.anthropic.client import DEFAULT_BASE_URL, AnthropicCostsClient
from aispend_pipeline.sources.anthropic.usage import AnthropicUsageClient
from aispend_pipeline.sources.base import AdminKeySourceResource, FocusProvider, Source

KEY_COLUMNS = (
    "usage_date",
    "workspace_id",
    "description",
    "cost_type",
    "model",
    "service_tier",
    "token_type",
    "context_window",
)

RAW_TABLE = Table(
    "raw",
    "anthropic_costs",
    (
        Column("usage_date", "DATE", nullable=False),
        Column("workspace_id"),
        Column("description"),
        Column("cost_type"),
        Column("model"),
        Column("service_tier"),
        Column("token_type"),
        Column("context_window"),
        Column("amount_usd", DECIMAL, nullable=False, description="The payload's cents, converted exactly."),
        Column("line_ordinal", "BIGINT", nullable=False),
    ),
    description="Anthropic cost_report results, one row per day, workspace and description.",
    unique_key=(*KEY_COLUMNS, "line_ordinal"),
)

USAGE_KEY_COLUMNS = ("usage_date", "workspace_id", "model")

USAGE_TABLE = Table(
    "raw",
    "anthropic_usage",
    (
        Column("usage_date", "DATE", nullable=False),
        Column("workspace_id"),
        Column("model"),
        Column("uncached_input_tokens", "BIGINT", nullable=False),
        Column("cache_read_input_tokens", "BIGINT", nullable=False),
        Column("cache_creation_5m_input_tokens", "BIGINT", nullable=False),
        Column("cache_creation_1h_input_tokens", "BIGINT", nullable=False),
        Column("output_tokens", "BIGINT", nullable=False),
        Column("web_search_requests", "BIGINT", nullable=False),
        Column("line_ordinal", "BIGINT", nullable=False),
    ),
    description="Anthropic usage_report/messages results (tokens, no money), per day, workspace and model.",
    unique_key=(*USAGE_KEY_COLUMNS, "line_ordinal"),
)

# Tokens by the cost lines' kinds (token_type): cache writes of both lifetimes are one kind, as their cost
# lines are both cache writes.
USAGE_TOKENS_SQL = """
SELECT 'anthropic' AS provider, usage_date, CAST(NULL AS VARCHAR) AS project_id, workspace_id, model,
    uncached_input_tokens AS input,
    cache_read_input_tokens AS cache_read,
    cache_creation_5m_input_tokens + cache_creation_1h_input_tokens AS cache_write,
    output_tokens AS output
FROM raw.anthropic_usage
"""

NORMALISE_SQL = """
SELECT
    md5(to_json(['anthropic', CAST(usage_date AS VARCHAR), workspace_id, description, cost_type, model,
        service_tier, token_type, context_window, CAST(line_ordinal AS VARCHAR)])) AS line_id,
    usage_date,
    'anthropic' AS provider,
    'Claude API' AS service,
    'Usage' AS charge_category,
    description AS charge_description,
    model,
    CASE WHEN token_type = 'output_tokens' THEN 'output'
         WHEN token_type LIKE '%input%' OR token_type LIKE 'cache%' THEN 'input' END AS token_direction,
    CASE WHEN token_type LIKE 'cache_read%' THEN 'read'
         WHEN token_type LIKE 'cache_creation%' THEN 'write' END AS token_cache_action,
    service_tier,
    amount_usd AS cost_usd,
    'daily' AS data_lag,
    'billed' AS cost_source,
    workspace_id
FROM raw.anthropic_costs
WHERE usage_date >= $start AND usage_date < $end
"""


class AnthropicResource(AdminKeySourceResource):
    """Anthropic Admin API (`ANTHROPIC_ADMIN_KEY`, endpoint `ANTHROPIC_BASE_URL`)."""

    enabled_by = "ANTHROPIC_ADMIN_KEY"
    client_class = AnthropicCostsClient
    raw_table = RAW_TABLE
    key_columns = KEY_COLUMNS
    usage_client_class = AnthropicUsageClient
    usage_table = USAGE_TABLE
    usage_key_columns = USAGE_KEY_COLUMNS
    base_url: str = DEFAULT_BASE_URL


SOURCE = Source(
    name="anthropic",
    focus=FocusProvider("Anthropic", "Organization"),
    title="Anthropic organisation costs",
    kinds=frozenset({"anthropic", "duckdb"}),
    raw_table=RAW_TABLE,
    normalise_sql=NORMALISE_SQL,
    resource_key="anthropic",
    enabled_by=("ANTHROPIC_ADMIN_KEY",),
    simulator="aispend_pipeline.sources.anthropic.simulator:AnthropicCostsSimulator",
    companion_tables=(USAGE_TABLE,),
    usage_tokens_sql=USAGE_TOKENS_SQL,
    build_resource=lambda: AnthropicResource(
        admin_key=env_or("ANTHROPIC_ADMIN_KEY"), base_url=env_or("ANTHROPIC_BASE_URL", DEFAULT_BASE_URL)
    ),
)
