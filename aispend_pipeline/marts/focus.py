"""`focus_cost_and_usage`: cost_line_items as a FOCUS dataset (FOCUS 1.0 columns, the 1.2 columns that apply).

Every column derives from the line-item schema and each provider's `FocusProvider` (a registered source's
or a known vendor's `focus`), so the view, the export file and the tests always agree. What FOCUS has no
column for yet (the model, token direction and cache action, the team the line is attributed to, every
allocation key) is kept in `x_` columns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from aispend_pipeline.schemas.line_items import ALLOCATION_KEY_COLUMNS, COST_LINE_ITEMS
from aispend_pipeline.sources.base import FocusProvider
from aispend_pipeline.sources.manual_invoices.vendors import KNOWN_VENDORS

FOCUS_VIEW = "main.focus_cost_and_usage"
FOCUS_VERSION = "1.2"
DEFAULT_TAG_KEY = "team"


def focus_providers() -> dict[str, FocusProvider]:
    """Display names by the `provider` slug of cost_line_items, from the registry and the known vendors. A
    manual invoice vendor that is not known falls back to its slug in title case (`Acme Voice Ai`)."""
    from aispend_pipeline.sources.registry import SOURCES

    known = {vendor.slug: vendor.focus for vendor in KNOWN_VENDORS}
    return known | {source.name: source.focus for source in SOURCES if source.focus is not None}


FALLBACK_BILLING_ACCOUNT_TYPE = "Vendor Account"

# SubAccountId: the first of these allocation keys a line carries, and the FOCUS SubAccountType it is.
SUB_ACCOUNT_KEYS: dict[str, str] = {
    "project_id": "Project",
    "workspace_id": "Workspace",
    "account_id": "Account",
    "subscription_id": "Subscription",
    "gcp_project_id": "Project",
}

CHARGE_FREQUENCY = {"Usage": "Usage-Based", "Purchase": "Recurring"}  # every other category: One-Time
SERVICE_CATEGORY = "AI and Machine Learning"
SERVICE_SUBCATEGORY = "Generative AI"


@dataclass(frozen=True)
class FocusColumn:
    """One column of the FOCUS dataset: its name, the SQL over cost_line_items, and how files render it."""

    name: str
    sql: str
    kind: str = "string"  # string | decimal | datetime | json
    introduced: str = "1.0"  # FOCUS version that defines it; "x" for custom columns


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _case_provider(values: dict[str, str], fallback: str) -> str:
    cases = " ".join(f"WHEN {sql_text(slug)} THEN {sql_text(value)}" for slug, value in values.items())
    return f"CASE provider {cases} ELSE {fallback} END"


def provider_name_sql() -> str:
    """ProviderName from the slug; an unknown slug (a manual invoice's vendor) in title case, never empty."""
    title = "array_to_string(list_transform(string_split(provider, '_'), lambda w: upper(w[1]) || w[2:]), ' ')"
    return _case_provider(
        {slug: p.name for slug, p in focus_providers().items()}, f"coalesce(nullif({title}, ''), provider)"
    )


def tag_keys(env: dict[str, str] | None = None) -> dict[str, str]:
    """The tag key whose value each tag-bearing provider's `team_tag` holds (settings, default `team`)."""
    env = dict(os.environ) if env is None else env
    return {
        slug: (env.get(p.tag_key_setting) or "").strip() or DEFAULT_TAG_KEY
        for slug, p in focus_providers().items()
        if p.tag_key_setting
    }


def utc(day_expression: str) -> str:
    """A day as the instant of its UTC midnight, whatever the session's time zone."""
    return f"timezone('UTC', CAST({day_expression} AS TIMESTAMP))"


def _pascal(column: str) -> str:
    return "".join(part.capitalize() for part in column.split("_"))


def focus_columns(env: dict[str, str] | None = None) -> tuple[FocusColumn, ...]:
    """The FOCUS dataset's columns, in file order: FOCUS 1.0, then 1.1/1.2, then the x_ columns."""
    name = provider_name_sql()
    money = "CAST(NULL AS DECIMAL(38, 12))"
    none = "CAST(NULL AS VARCHAR)"
    not_tax = "charge_category <> 'Tax'"
    sub_account = f"coalesce({', '.join(SUB_ACCOUNT_KEYS)})"
    sub_account_type = "CASE " + " ".join(
        f"WHEN {k} IS NOT NULL THEN {sql_text(t)}" for k, t in SUB_ACCOUNT_KEYS.items()
    )
    keys = tag_keys(env)
    tag_key = _case_provider(keys, sql_text(DEFAULT_TAG_KEY))
    frequency = "CASE charge_category " + " ".join(f"WHEN '{c}' THEN '{f}'" for c, f in CHARGE_FREQUENCY.items())
    usage = "charge_category = 'Usage' AND quantity IS NOT NULL"
    quantity_kept = f"{not_tax} AND quantity IS NOT NULL"
    billing_account_type = _case_provider(
        {slug: p.billing_account_type for slug, p in focus_providers().items()}, sql_text(FALLBACK_BILLING_ACCOUNT_TYPE)
    )
    focus = [
        FocusColumn("AvailabilityZone", none),
        FocusColumn("BilledCost", "cost_usd", "decimal"),
        FocusColumn("BillingAccountId", "coalesce(billing_account_id, provider)"),
        FocusColumn("BillingAccountName", f"coalesce(billing_account_id, {name})"),
        FocusColumn("BillingCurrency", "'USD'"),
        FocusColumn("BillingPeriodEnd", utc("date_trunc('month', usage_date) + INTERVAL 1 MONTH"), "datetime"),
        FocusColumn("BillingPeriodStart", utc("date_trunc('month', usage_date)"), "datetime"),
        FocusColumn("ChargeCategory", "charge_category"),
        FocusColumn("ChargeClass", none),  # a restated day replaces the stored day: rows are never deltas
        FocusColumn("ChargeDescription", "coalesce(charge_description, service)"),
        FocusColumn("ChargeFrequency", f"{frequency} ELSE 'One-Time' END"),
        FocusColumn("ChargePeriodEnd", utc("usage_date + INTERVAL 1 DAY"), "datetime"),
        FocusColumn("ChargePeriodStart", utc("usage_date"), "datetime"),
        FocusColumn("CommitmentDiscountCategory", none),
        FocusColumn("CommitmentDiscountId", none),
        FocusColumn("CommitmentDiscountName", none),
        FocusColumn("CommitmentDiscountStatus", none),
        FocusColumn("CommitmentDiscountType", none),
        FocusColumn("ConsumedQuantity", f"CASE WHEN {usage} THEN quantity END", "decimal"),
        FocusColumn("ConsumedUnit", f"CASE WHEN {usage} THEN coalesce(unit, 'Units') END"),
        FocusColumn("ContractedCost", "cost_usd", "decimal"),
        FocusColumn("ContractedUnitPrice", money, "decimal"),
        FocusColumn("EffectiveCost", "cost_usd", "decimal"),
        FocusColumn("InvoiceIssuerName", name),
        FocusColumn("ListCost", "cost_usd", "decimal"),
        FocusColumn("ListUnitPrice", money, "decimal"),
        FocusColumn("PricingCategory", "CASE WHEN charge_category IN ('Usage', 'Purchase') THEN 'Standard' END"),
        FocusColumn("PricingQuantity", f"CASE WHEN {quantity_kept} THEN quantity END", "decimal"),
        FocusColumn("PricingUnit", f"CASE WHEN {quantity_kept} THEN coalesce(unit, 'Units') END"),
        FocusColumn("ProviderName", name),
        FocusColumn("PublisherName", name),
        FocusColumn("RegionId", "region"),
        FocusColumn("RegionName", "region"),
        FocusColumn("ResourceId", none),  # no line-item source reports a provisioned resource yet
        FocusColumn("ResourceName", none),
        FocusColumn("ResourceType", none),
        FocusColumn("ServiceCategory", sql_text(SERVICE_CATEGORY)),
        FocusColumn("ServiceName", "service"),
        FocusColumn("SkuId", f"CASE WHEN {not_tax} THEN sku_id END"),
        FocusColumn("SkuPriceId", none),
        FocusColumn("SubAccountId", sub_account),
        FocusColumn("SubAccountName", sub_account),
        FocusColumn(
            "Tags",
            f"CASE WHEN team_tag IS NOT NULL THEN json_object({tag_key}, team_tag) ELSE json_object() END",
            "json",
        ),
        FocusColumn("BillingAccountType", billing_account_type, introduced="1.2"),
        FocusColumn("ServiceSubcategory", sql_text(SERVICE_SUBCATEGORY), introduced="1.1"),
        FocusColumn("SkuMeter", f"CASE WHEN {not_tax} AND sku_id IS NOT NULL THEN usage_type END", introduced="1.1"),
        FocusColumn("SubAccountType", f"{sub_account_type} END", introduced="1.2"),
    ]
    custom = [
        FocusColumn("x_Provider", "provider", introduced="x"),
        FocusColumn("x_Model", "model", introduced="x"),
        FocusColumn("x_TokenDirection", "token_direction", introduced="x"),
        FocusColumn("x_TokenCacheAction", "token_cache_action", introduced="x"),
        FocusColumn("x_ServiceTier", "service_tier", introduced="x"),
        FocusColumn("x_UsageType", "usage_type", introduced="x"),
        FocusColumn("x_LastActivityDate", "CAST(last_activity_date AS VARCHAR)", introduced="x"),
        FocusColumn("x_Team", "team", introduced="x"),
        FocusColumn("x_CostCentre", "cost_centre", introduced="x"),
        FocusColumn("x_Product", "product", introduced="x"),
        FocusColumn("x_AllocationMethod", "allocation_method", introduced="x"),
        FocusColumn("x_AllocationShare", "allocation_share", "decimal", introduced="x"),
        FocusColumn("x_AllocationRule", "allocation_rule", introduced="x"),
        FocusColumn("x_CostSource", "cost_source", introduced="x"),
        FocusColumn("x_DataLag", "data_lag", introduced="x"),
        *(
            FocusColumn(f"x_{_pascal(column)}", column, introduced="x")
            for column in ALLOCATION_KEY_COLUMNS.values()
            if column != "model"
        ),
        FocusColumn("x_CostLineId", "CAST(cost_line_id AS VARCHAR)", introduced="x"),
    ]
    return (*focus, *custom)


def focus_select_sql(where: str = "", env: dict[str, str] | None = None) -> str:
    """SELECT of the FOCUS dataset from cost_line_items (`where`: an optional filter on its columns)."""
    columns = ",\n    ".join(f"{c.sql} AS {c.name}" for c in focus_columns(env))
    return f"SELECT\n    {columns}\nFROM {COST_LINE_ITEMS.qualified_name}\n{where}"


def focus_view_sql(env: dict[str, str] | None = None) -> str:
    return f"CREATE OR REPLACE VIEW {FOCUS_VIEW} AS\n{focus_select_sql(env=env)}"
