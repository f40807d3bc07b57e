"""OpenAI as a pipeline source: resource, raw table and normalisation to line items."""

from __future__ import annotations

from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.settings import env_or
from aispend_pipeline.sources.base import AdminKeySourceResource, FocusProvider, Source
from aispend_pipeline.sources.openai.client import DEFAULT_BASE_URL, OpenAICostsClient

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
    build_resource=lambda: OpenAIResource(
        admin_key=env_or("OPENAI_ADMIN_KEY"), base_url=env_or("OPENAI_BASE_URL", DEFAULT_BASE_URL)
    ),
)
