"""AWS Cost Explorer as a pipeline source: resource, raw table, normalisation."""

from __future__ import annotations

from datetime import date

from aispend_pipeline.core.days import days_between
from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.settings import env_or, is_enabled
from aispend_pipeline.sources.aws.client import (
    DEFAULT_TAG_KEY,
    ENABLED_SETTING,
    ENDPOINT_SETTING,
    MARKETPLACE_SUFFIX,
    CostExplorerClient,
    parse_services,
)
from aispend_pipeline.sources.base import (
    FocusProvider,
    RawPull,
    RowSink,
    Source,
    SourceResource,
)

KEY_COLUMNS = ("usage_date", "service", "account_id", "usage_type", "tag_key", "team_tag")

RAW_TABLE = Table(
    "raw",
    "aws_cost_explorer_costs",
    (
        Column("usage_date", "DATE", nullable=False, description="The DAILY TimePeriod's Start (UTC)."),
        Column("service", nullable=False, description="SERVICE, e.g. 'Amazon Bedrock'."),
        Column("account_id", nullable=False, description="LINKED_ACCOUNT."),
        Column("account_name", description="The linked account's name (DimensionValueAttributes)."),
        Column("usage_type", nullable=False, description="USAGE_TYPE, e.g. 'USE1-Claude3Sonnet-input-tokens'."),
        Column("tag_key", nullable=False, description="The cost-allocation tag grouped by (AISPEND_AWS_TAG_KEY)."),
        Column("team_tag", description="The tag's value; NULL for the untagged group ('team$')."),
        Column("cost_usd", DECIMAL, nullable=False, description="UnblendedCost, exactly as the text Amount."),
        Column("quantity", DECIMAL, description="UsageQuantity."),
        Column("unit", description="UsageQuantity's unit (NULL for 'N/A')."),
        Column("estimated", "BOOLEAN", nullable=False, description="Cost Explorer's Estimated flag of the day."),
        Column("line_ordinal", "BIGINT", nullable=False),
    ),
    description="Cost Explorer's daily AI costs per service, linked account, usage type and team tag.",
    unique_key=(*KEY_COLUMNS, "line_ordinal"),
)

# Usage-type prefix -> region (the prefixes AWS uses in usage types; eu-west-1 is the bare "EU").
REGION_PREFIXES = {
    "USE1": "us-east-1", "USE2": "us-east-2", "USW1": "us-west-1", "USW2": "us-west-2", "CAN1": "ca-central-1",
    "CAN2": "ca-west-1", "EU": "eu-west-1", "EUW2": "eu-west-2", "EUW3": "eu-west-3", "EUC1": "eu-central-1",
    "EUC2": "eu-central-2", "EUN1": "eu-north-1", "EUS1": "eu-south-1", "EUS2": "eu-south-2",
    "APN1": "ap-northeast-1", "APN2": "ap-northeast-2", "APN3": "ap-northeast-3", "APS1": "ap-southeast-1",
    "APS2": "ap-southeast-2", "APS3": "ap-south-1", "APS4": "ap-southeast-3", "APS5": "ap-south-2",
    "APS6": "ap-southeast-4", "APE1": "ap-east-1", "SAE1": "sa-east-1", "MES1": "me-south-1",
    "MEC1": "me-central-1", "AFS1": "af-south-1", "ILC1": "il-central-1", "UGW1": "us-gov-west-1",
    "UGE1": "us-gov-east-1",
}  # fmt: skip
_REGION_CASES = " ".join(f"WHEN '{prefix}' THEN '{region}'" for prefix, region in REGION_PREFIXES.items())
# A Bedrock token usage type: <region>-<model>-[batch-][cache-read-|cache-write-](input|output)-token(s|-count)
_BEDROCK_MODEL = r"^[A-Z]+[0-9]*-(.+?)-(batch-)?(cache-(read|write)-)?(input|output)-token"

NORMALISE_SQL = f"""
SELECT
    md5(to_json([
        'aws', CAST(usage_date AS VARCHAR), service, account_id, usage_type, tag_key, team_tag,
        CAST(line_ordinal AS VARCHAR)
    ])) AS line_id,
    usage_date,
    'aws' AS provider,
    service,
    'Usage' AS charge_category,
    usage_type AS charge_description,
    CASE WHEN service LIKE '% {MARKETPLACE_SUFFIX}' THEN trim(replace(service, '{MARKETPLACE_SUFFIX}', ''))
         WHEN service = 'Amazon Bedrock' THEN nullif(regexp_extract(usage_type, '{_BEDROCK_MODEL}', 1), '')
    END AS model,
    CASE WHEN regexp_matches(lower(usage_type), 'output[-_]?token') THEN 'output'
         WHEN regexp_matches(lower(usage_type), 'input[-_]?token') THEN 'input' END AS token_direction,
    CASE WHEN regexp_matches(lower(usage_type), 'cache-?read') THEN 'read'
         WHEN regexp_matches(lower(usage_type), 'cache-?write') THEN 'write' END AS token_cache_action,
    cost_usd,
    quantity,
    unit,
    CASE split_part(usage_type, '-', 1) {_REGION_CASES} END AS region,
    usage_type,
    'daily' AS data_lag,
    'billed' AS cost_source,
    account_id,
    team_tag
FROM raw.aws_cost_explorer_costs
WHERE usage_date >= $start AND usage_date < $end
"""


class CostExplorerResource(SourceResource):
    """Cost Explorer (`AISPEND_AWS_ENABLED=true`), with credentials from boto3's default chain."""

    enabled_by = ENABLED_SETTING
    enabled: str | None = None
    endpoint: str | None = None
    tag_key: str = DEFAULT_TAG_KEY
    extra_services: str | None = None

    @property
    def is_configured(self) -> bool:
        return is_enabled(self.enabled)

    @property
    def not_configured_reason(self) -> str:
        return f"not configured: set {ENABLED_SETTING}=true to enable this source"

    streams = True
    raw_table = RAW_TABLE

    def pull_into(self, start: date, end: date, sink: RowSink) -> RawPull:
        """The lines of [start, end), each (service, account) pair's into `sink` as soon as it adds up."""
        client = CostExplorerClient(
            endpoint=self.endpoint, tag_key=self.tag_key, services=parse_services(self.extra_services)
        )
        for columns in client.daily_cost_batches(start, end):
            sink.append(RAW_TABLE, columns, KEY_COLUMNS)
        # Cost Explorer answers every requested day (ResultsByTime has one per day, empty ones included).
        return RawPull(None, client.request_count, frozenset(days_between(start, end)))


SOURCE = Source(
    name="aws",
    focus=FocusProvider("Amazon Web Services", "Management Account", "AISPEND_AWS_TAG_KEY"),
    title="AWS Cost Explorer (Amazon Bedrock, Amazon Q, Bedrock Marketplace models)",
    kinds=frozenset({"aws", "duckdb"}),
    raw_table=RAW_TABLE,
    normalise_sql=NORMALISE_SQL,
    resource_key="aws",
    money_column="cost_usd",
    billing_model="tokens",
    enabled_by=(ENABLED_SETTING,),
    simulator="aispend_pipeline.sources.aws.simulator:CostExplorerSimulator",
    build_resource=lambda: CostExplorerResource(
        enabled=env_or(ENABLED_SETTING),
        endpoint=env_or(ENDPOINT_SETTING),
        tag_key=env_or("AISPEND_AWS_TAG_KEY", DEFAULT_TAG_KEY),
        extra_services=env_or("AISPEND_AWS_EXTRA_SERVICES"),
    ),
)
