"""Google Cloud (billing export in BigQuery) as a pipeline source: resource, raw table, normalisation."""

from __future__ import annotations

from datetime import date

from aispend_pipeline.core.days import days_between
from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.settings import env_or
from aispend_pipeline.sources.base import FocusProvider, RawPull, Source, SourceResource, frame_from_records
from aispend_pipeline.sources.gcp.client import DEFAULT_LABEL_KEY, TABLE_SETTING, GcpBillingClient, parse_services

KEY_COLUMNS = (
    "usage_date",
    "service",
    "charge_category",
    "cost_type",
    "credit_type",
    "credit_name",
    "gcp_project_id",
    "team_tag",
    "sku_id",
    "sku_description",
    "region",
    "billing_account_id",
    "unit",
)

RAW_TABLE = Table(
    "raw",
    "gcp_billing_costs",
    (
        Column("usage_date", "DATE", nullable=False, description="UTC day of usage_start_time."),
        Column("service", nullable=False, description="service.description, e.g. 'Vertex AI'."),
        Column("charge_category", nullable=False, description="Usage, Tax, Adjustment, or Credit (one per credit)."),
        Column("cost_type"),
        Column("credit_type", description="credits.type (FREE_TIER, PROMOTION, ...) on Credit lines."),
        Column("credit_name"),
        Column("gcp_project_id"),
        Column("team_tag", description="Value of the label named by AISPEND_GCP_LABEL_KEY."),
        Column("sku_id"),
        Column("sku_description"),
        Column("region"),
        Column("billing_account_id"),
        Column("cost_usd", DECIMAL, nullable=False, description="SUM(CAST(cost AS NUMERIC)), or of the credits."),
        Column("quantity", DECIMAL, description="usage.amount_in_pricing_units, summed as NUMERIC."),
        Column("unit"),
        Column("line_ordinal", "BIGINT", nullable=False),
    ),
    description="Billing export rows aggregated in BigQuery per day, service, SKU, project, region and label.",
    unique_key=(*KEY_COLUMNS, "line_ordinal"),
)

NORMALISE_SQL = """
SELECT
    md5(to_json([
        'gcp', CAST(usage_date AS VARCHAR), service, charge_category, cost_type, credit_type, credit_name,
        gcp_project_id, team_tag, sku_id, sku_description, region, billing_account_id, unit,
        CAST(line_ordinal AS VARCHAR)
    ])) AS line_id,
    usage_date,
    'gcp' AS provider,
    service,
    charge_category,
    CASE WHEN charge_category = 'Credit' THEN coalesce(credit_name, credit_type) || ' (' || sku_description || ')'
         ELSE sku_description END AS charge_description,
    nullif(lower(replace(regexp_extract(sku_description, '^(Gemini [0-9.]+ (Flash-Lite|Flash|Pro))', 1), ' ', '-')),
        '') AS model,
    CASE WHEN charge_category <> 'Usage' THEN NULL
         WHEN sku_description ILIKE '%output%' THEN 'output'
         WHEN sku_description ILIKE '%input%' THEN 'input' END AS token_direction,
    CASE WHEN charge_category = 'Usage' AND sku_description ILIKE '%cached%' THEN 'read' END AS token_cache_action,
    cost_usd,
    quantity,
    unit,
    region,
    sku_id,
    sku_description AS usage_type,
    billing_account_id,
    'daily' AS data_lag,
    'billed' AS cost_source,
    team_tag,
    gcp_project_id
FROM raw.gcp_billing_costs
WHERE usage_date >= $start AND usage_date < $end
"""


class GcpBillingResource(SourceResource):
    """The billing export table (`AISPEND_GCP_BILLING_TABLE`), read with google-auth's default credentials."""

    enabled_by = TABLE_SETTING
    billing_table: str | None = None
    endpoint: str | None = None
    label_key: str = DEFAULT_LABEL_KEY
    extra_services: str | None = None

    @property
    def is_configured(self) -> bool:
        return bool(self.billing_table)

    def pull(self, start: date, end: date) -> RawPull:
        client = GcpBillingClient(
            self.billing_table or "",
            self.endpoint,
            label_key=self.label_key,
            services=parse_services(self.extra_services),
        )
        lines = client.daily_costs(start, end)
        frame = frame_from_records(lines, RAW_TABLE, KEY_COLUMNS)
        # BigQuery answers for the whole range: a day without rows had no AI spend exported (yet).
        return RawPull(frame, client.request_count, frozenset(days_between(start, end)))


SOURCE = Source(
    name="gcp",
    focus=FocusProvider("Google Cloud", "Billing Account", "AISPEND_GCP_LABEL_KEY"),
    title="Google Cloud billing export (Vertex AI, Gemini API)",
    kinds=frozenset({"bigquery", "duckdb"}),
    raw_table=RAW_TABLE,
    normalise_sql=NORMALISE_SQL,
    resource_key="gcp",
    money_column="cost_usd",
    billing_model="tokens",
    enabled_by=(TABLE_SETTING,),
    simulator="aispend_pipeline.sources.gcp.simulator:BigQueryBillingSimulator",
    build_resource=lambda: GcpBillingResource(
        billing_table=env_or(TABLE_SETTING),
        endpoint=env_or("AISPEND_BIGQUERY_ENDPOINT"),
        label_key=env_or("AISPEND_GCP_LABEL_KEY", DEFAULT_LABEL_KEY),
        extra_services=env_or("AISPEND_GCP_EXTRA_SERVICES"),
    ),
)
