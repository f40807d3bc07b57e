"""`focus_cost_and_usage`: cost_line_items under FOCUS 1.0 column names (custom columns prefixed x_).

Every column derives from the line-item schema, so the view is always in step with the table.
"""

from __future__ import annotations

from aispend_pipeline.schemas.line_items import COST_LINE_ITEMS

FOCUS_VIEW = "main.focus_cost_and_usage"

PROVIDER_NAMES = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "github_copilot": "GitHub",
    "openrouter": "OpenRouter",
    "aws": "AWS",
    "azure": "Microsoft",
    "gcp": "Google Cloud",
}


def _provider_name_sql() -> str:
    cases = " ".join(f"WHEN '{slug}' THEN '{name}'" for slug, name in PROVIDER_NAMES.items())
    return f"CASE provider {cases} ELSE provider END"


def utc(day_expression: str) -> str:
    """A day as the instant of its UTC midnight, whatever the session's time zone."""
    return f"timezone('UTC', CAST({day_expression} AS TIMESTAMP))"


def focus_view_sql() -> str:
    provider_name = _provider_name_sql()
    return f"""
CREATE OR REPLACE VIEW {FOCUS_VIEW} AS
SELECT
    cost_usd AS BilledCost,
    cost_usd AS EffectiveCost,
    cost_usd AS ListCost,
    cost_usd AS ContractedCost,
    'USD' AS BillingCurrency,
    {utc("usage_date")} AS ChargePeriodStart,
    {utc("usage_date + INTERVAL 1 DAY")} AS ChargePeriodEnd,
    {utc("date_trunc('month', usage_date)")} AS BillingPeriodStart,
    {utc("date_trunc('month', usage_date) + INTERVAL 1 MONTH")} AS BillingPeriodEnd,
    charge_category AS ChargeCategory,
    CAST(NULL AS VARCHAR) AS ChargeClass,
    charge_description AS ChargeDescription,
    CASE charge_category WHEN 'Usage' THEN 'Usage-Based' WHEN 'Purchase' THEN 'Recurring' ELSE 'One-Time' END
        AS ChargeFrequency,
    quantity AS ConsumedQuantity,
    unit AS ConsumedUnit,
    quantity AS PricingQuantity,
    unit AS PricingUnit,
    'Standard' AS PricingCategory,
    {provider_name} AS ProviderName,
    {provider_name} AS PublisherName,
    {provider_name} AS InvoiceIssuerName,
    service AS ServiceName,
    'AI and Machine Learning' AS ServiceCategory,
    provider AS BillingAccountId,
    {provider_name} AS BillingAccountName,
    coalesce(project_id, workspace_id, account_id, subscription_id, gcp_project_id, github_team) AS SubAccountId,
    coalesce(project_id, workspace_id, account_id, subscription_id, gcp_project_id, github_team) AS SubAccountName,
    model AS ResourceId,
    model AS ResourceName,
    CASE WHEN model IS NOT NULL THEN 'Model' END AS ResourceType,
    CAST(NULL AS VARCHAR) AS RegionId,
    CAST(NULL AS VARCHAR) AS RegionName,
    CAST(NULL AS VARCHAR) AS AvailabilityZone,
    CAST(NULL AS VARCHAR) AS SkuId,
    CAST(NULL AS VARCHAR) AS SkuPriceId,
    CAST(NULL AS DECIMAL(38, 12)) AS ListUnitPrice,
    CAST(NULL AS DECIMAL(38, 12)) AS ContractedUnitPrice,
    CAST(NULL AS VARCHAR) AS CommitmentDiscountId,
    CAST(NULL AS VARCHAR) AS CommitmentDiscountName,
    CAST(NULL AS VARCHAR) AS CommitmentDiscountCategory,
    CAST(NULL AS VARCHAR) AS CommitmentDiscountType,
    CAST(NULL AS VARCHAR) AS CommitmentDiscountStatus,
    CASE WHEN team_tag IS NOT NULL THEN json_object('team', team_tag) ELSE json_object() END AS Tags,
    team AS x_Team,
    cost_centre AS x_CostCentre,
    product AS x_Product,
    allocation_method AS x_AllocationMethod,
    allocation_share AS x_AllocationShare,
    cost_source AS x_CostSource,
    data_lag AS x_DataLag,
    model AS x_Model,
    token_direction AS x_TokenDirection,
    token_cache_action AS x_TokenCacheAction,
    service_tier AS x_ServiceTier,
    cost_line_id AS x_CostLineId
FROM {COST_LINE_ITEMS.qualified_name}
"""
