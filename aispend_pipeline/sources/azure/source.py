"""Azure Cost Management as a pipeline source: resource, raw table, normalisation."""

from __future__ import annotations

from datetime import date

from aispend_pipeline.core.days import days_between
from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.settings import env_or
from aispend_pipeline.sources.azure.client import (
    DEFAULT_TAG_KEY,
    ENDPOINT_SETTING,
    SCOPE_SETTING,
    AzureCostClient,
    parse_services,
)
from aispend_pipeline.sources.base import FocusProvider, RawPull, Source, SourceResource, frame_from_records

KEY_COLUMNS = (
    "usage_date",
    "subscription_id",
    "resource_group",
    "region",
    "service",
    "meter_subcategory",
    "meter",
    "charge_type",
    "team_tag",
    "currency",
)

RAW_TABLE = Table(
    "raw",
    "azure_cost_query",
    (
        Column("usage_date", "DATE", nullable=False, description="UsageDate (UTC day) of the Daily query answer."),
        Column("subscription_id"),
        Column("resource_group", description="ResourceGroupName."),
        Column("region", description="ResourceLocation."),
        Column("service", nullable=False, description="ServiceName, e.g. 'Foundry Models'."),
        Column("meter_subcategory", description="MeterSubCategory, e.g. 'Azure OpenAI'."),
        Column("meter", description="Meter, e.g. 'gpt-4o 0806 Inp glbl 1K Tokens' (names the model)."),
        Column("charge_type", description="ChargeType (Usage, Purchase, Refund, ...)."),
        Column("charge_category", nullable=False, description="FOCUS ChargeCategory from ChargeType."),
        Column("team_tag", description="Value of the resource tag named by AISPEND_AZURE_TAG_KEY."),
        Column("currency", nullable=False, description="Billing currency of `cost`."),
        Column("cost", DECIMAL, nullable=False, description="Cost in the billing currency, exact from the text."),
        Column("cost_usd", DECIMAL, nullable=False, description="CostUSD, exact from the answer's text."),
        Column("line_ordinal", "BIGINT", nullable=False),
    ),
    description="Cost Management query rows per day, subscription, resource group, region, meter and team tag.",
    unique_key=(*KEY_COLUMNS, "line_ordinal"),
)

NORMALISE_SQL = """
SELECT
    md5(to_json([
        'azure', CAST(usage_date AS VARCHAR), subscription_id, resource_group, region, service,
        meter_subcategory, meter, charge_type, team_tag, currency, CAST(line_ordinal AS VARCHAR)
    ])) AS line_id,
    usage_date,
    'azure' AS provider,
    service,
    charge_category,
    meter AS charge_description,
    nullif(lower(replace(regexp_extract(meter,
        '(?i)^(.+?)\\s+(?:[0-9]{4}\\s+)?(?:cchd\\s+|cached\\s+)?(?:inp|input|outp|outpt|output|tokens|1k|1m)\\b', 1),
        ' ', '-')), '') AS model,
    CASE WHEN charge_category <> 'Usage' THEN NULL
         WHEN regexp_matches(meter, '(?i)\\b(outp|outpt|output)\\b') THEN 'output'
         WHEN regexp_matches(meter, '(?i)\\b(inp|input)\\b') THEN 'input' END AS token_direction,
    CASE WHEN charge_category = 'Usage' AND regexp_matches(meter, '(?i)\\b(cchd|cached)\\b') THEN 'read'
         END AS token_cache_action,
    cost_usd,
    region,
    meter AS usage_type,
    'daily' AS data_lag,
    'billed' AS cost_source,
    subscription_id,
    resource_group,
    team_tag
FROM raw.azure_cost_query
WHERE usage_date >= $start AND usage_date < $end
"""


class AzureCostResource(SourceResource):
    """The Cost Management scope (`AZURE_COST_SCOPE`), read with azure-identity's DefaultAzureCredential."""

    enabled_by = SCOPE_SETTING
    scope: str | None = None
    endpoint: str | None = None
    tag_key: str = DEFAULT_TAG_KEY
    extra_services: str | None = None

    @property
    def is_configured(self) -> bool:
        return bool(self.scope)

    def pull(self, start: date, end: date) -> RawPull:
        client = AzureCostClient(
            self.scope or "", self.endpoint, tag_key=self.tag_key, services=parse_services(self.extra_services)
        )
        lines = client.daily_costs(start, end)
        frame = frame_from_records(lines, RAW_TABLE, KEY_COLUMNS)
        # The query answers for the whole range and leaves out days without rows: every day is covered.
        return RawPull(frame, client.request_count, frozenset(days_between(start, end)), dict(client.rounding_usd))


SOURCE = Source(
    name="azure",
    focus=FocusProvider("Microsoft", "Billing Account", "AISPEND_AZURE_TAG_KEY"),
    title="Azure Cost Management (Azure OpenAI, Foundry Models)",
    kinds=frozenset({"azure", "duckdb"}),
    raw_table=RAW_TABLE,
    normalise_sql=NORMALISE_SQL,
    resource_key="azure",
    money_column="cost_usd",
    billing_model="tokens",
    enabled_by=(SCOPE_SETTING,),
    simulator="aispend_pipeline.sources.azure.simulator:AzureCostSimulator",
    build_resource=lambda: AzureCostResource(
        scope=env_or(SCOPE_SETTING),
        endpoint=env_or(ENDPOINT_SETTING),
        tag_key=env_or("AISPEND_AZURE_TAG_KEY", DEFAULT_TAG_KEY),
        extra_services=env_or("AISPEND_AZURE_EXTRA_SERVICES"),
    ),
)
