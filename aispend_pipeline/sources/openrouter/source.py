"""OpenRouter as a pipeline source: resource, raw table and normalisation to line items."""

from __future__ import annotations

from datetime import date

from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.settings import env_or
from aispend_pipeline.sources.base import AdminKeySourceResource, FocusProvider, RawPull, Source, frame_from_records
from aispend_pipeline.sources.openrouter.client import CREDENTIAL_SETTING, DEFAULT_BASE_URL, OpenRouterActivityClient

KEY_COLUMNS = ("usage_date", "workspace_id", "model", "model_permaslug", "endpoint_id", "provider_name")

RAW_TABLE = Table(
    "raw",
    "openrouter_activity",
    (
        Column("usage_date", "DATE", nullable=False, description="The activity row's UTC day (`date`)."),
        Column("workspace_id", description="The OpenRouter workspace (rows are split per workspace)."),
        Column("model", nullable=False, description="Model slug, e.g. 'openai/gpt-4.1'."),
        Column("model_permaslug", description="Versioned model slug, e.g. 'openai/gpt-4.1-2025-04-14'."),
        Column("endpoint_id", description="The model endpoint (one model can be served by several providers)."),
        Column("provider_name", description="The upstream provider serving the endpoint, e.g. 'Amazon Bedrock'."),
        Column("usage_usd", DECIMAL, nullable=False, description="`usage`: USD of OpenRouter credits spent."),
        Column(
            "byok_usage_inference_usd",
            DECIMAL,
            description="`byok_usage_inference`: USD the upstream provider bills to the user's own key (not a cost "
            "here: it is on that provider's bill).",
        ),
        Column("requests", "BIGINT"),
        Column("prompt_tokens", "BIGINT"),
        Column("completion_tokens", "BIGINT"),
        Column("reasoning_tokens", "BIGINT"),
        Column("cached_tokens", "BIGINT"),
        Column("line_ordinal", "BIGINT", nullable=False),
    ),
    description="OpenRouter /activity rows, one per day, workspace and model endpoint (the last 30 days only).",
    unique_key=(*KEY_COLUMNS, "line_ordinal"),
)

NORMALISE_SQL = """
SELECT
    md5(to_json([
        'openrouter', CAST(usage_date AS VARCHAR), workspace_id, model, model_permaslug, endpoint_id, provider_name,
        CAST(line_ordinal AS VARCHAR)
    ])) AS line_id,
    usage_date,
    'openrouter' AS provider,
    'OpenRouter' AS service,
    'Usage' AS charge_category,
    model || coalesce(' via ' || provider_name, '') AS charge_description,
    model,
    usage_usd AS cost_usd,
    CASE WHEN prompt_tokens IS NOT NULL OR completion_tokens IS NOT NULL
         THEN coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0) END AS quantity,
    CASE WHEN prompt_tokens IS NOT NULL OR completion_tokens IS NOT NULL THEN 'tokens' END AS unit,
    endpoint_id AS sku_id,
    'daily' AS data_lag,
    'billed' AS cost_source,
    workspace_id
FROM raw.openrouter_activity
WHERE usage_date >= $start AND usage_date < $end
"""


class OpenRouterResource(AdminKeySourceResource):
    """OpenRouter activity (`OPENROUTER_API_KEY`, a management key; endpoint `OPENROUTER_BASE_URL`)."""

    enabled_by = CREDENTIAL_SETTING
    client_class = OpenRouterActivityClient
    raw_table = RAW_TABLE
    key_columns = KEY_COLUMNS
    base_url: str = DEFAULT_BASE_URL
    streams = False  # one small answer: a frame

    def pull(self, start: date, end: date) -> RawPull:
        client = OpenRouterActivityClient(self.admin_key or "", self.base_url)
        answer = client.activity(start, end)
        # Only the days the API still serves are replaced: older stored days stay as they are.
        frame = frame_from_records(answer.lines, RAW_TABLE, KEY_COLUMNS)
        return RawPull(frame, client.request_count, answer.days, dict(client.rounding_usd))


SOURCE = Source(
    name="openrouter",
    focus=FocusProvider("OpenRouter"),
    title="OpenRouter activity",
    kinds=frozenset({"openrouter", "duckdb"}),
    raw_table=RAW_TABLE,
    normalise_sql=NORMALISE_SQL,
    resource_key="openrouter",
    money_column="usage_usd",
    billing_model="tokens",
    enabled_by=(CREDENTIAL_SETTING,),
    simulator="aispend_pipeline.sources.openrouter.simulator:OpenRouterActivitySimulator",
    build_resource=lambda: OpenRouterResource(
        admin_key=env_or(CREDENTIAL_SETTING), base_url=env_or("OPENROUTER_BASE_URL", DEFAULT_BASE_URL)
    ),
)
