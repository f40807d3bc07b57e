"""GitHub Copilot seats as a pipeline source: resource, raw table, normalisation.

The seats API lists today's seats only, so history is kept rather than recomputed: a pull (re)computes
the days of the live window (yesterday and the restatement window before it, up to today) from the
list, and fills an older day from it only when nothing is stored for that day yet (a first backfill).
An older stored day stays as it was pulled, so a seat removed since keeps its cost on the days it
was billed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from aispend_pipeline.core.days import days_between
from aispend_pipeline.core.money import parse_money
from aispend_pipeline.schemas.table import DECIMAL, Column, Table
from aispend_pipeline.settings import DEFAULT_DUCKDB_PATH, SettingsError, env_or, restatement_days
from aispend_pipeline.sources.base import FocusProvider, RawPull, RowSink, Source, SourceResource
from aispend_pipeline.sources.github_copilot.client import (
    DEFAULT_BASE_URL,
    ORG_SETTING,
    PRICE_SETTING,
    TOKEN_SETTING,
    GitHubCopilotClient,
)
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

KEY_COLUMNS = ("usage_date", "user_name", "github_team", "plan_type")

RAW_TABLE = Table(
    "raw",
    "github_copilot_seats",
    (
        Column("usage_date", "DATE", nullable=False, description="A UTC day the seat was assigned."),
        Column("user_name", description="assignee.login (NULL: a seat without an assignee)."),
        Column("assignee_type", description="assignee.type: User, Team or Organization."),
        Column("github_team", description="assigning_team.slug (NULL: assigned individually)."),
        Column("plan_type", nullable=False, description="business or enterprise (the org's plan if unstated)."),
        Column("seat_created_date", "DATE", nullable=False, description="UTC day of created_at."),
        Column("pending_cancellation_date", "DATE", description="The seat is not billed from this day on."),
        Column("last_activity_at", description="last_activity_at in UTC, ISO 8601."),
        Column("last_activity_date", "DATE", description="UTC day of last_activity_at."),
        Column("last_activity_editor"),
        Column("monthly_price_usd", DECIMAL, nullable=False, description="List price (or the override) per month."),
        Column("amount_usd", DECIMAL, nullable=False, description="The month's price spread over its days."),
        Column("line_ordinal", "BIGINT", nullable=False),
    ),
    description="One row per Copilot seat and day it is assigned, from the seat list as of the pull.",
    unique_key=(*KEY_COLUMNS, "line_ordinal"),
)

NORMALISE_SQL = """
SELECT
    md5(to_json([
        'github_copilot', CAST(usage_date AS VARCHAR), user_name, github_team, plan_type,
        CAST(line_ordinal AS VARCHAR)
    ])) AS line_id,
    usage_date,
    'github_copilot' AS provider,
    'GitHub Copilot' AS service,
    'Purchase' AS charge_category,
    'Copilot ' || CASE plan_type WHEN 'enterprise' THEN 'Enterprise' WHEN 'business' THEN 'Business'
        ELSE plan_type END || ' seat' AS charge_description,
    amount_usd AS cost_usd,
    CAST(1 AS DECIMAL(38, 12)) AS quantity,
    'seat-days' AS unit,
    'copilot_' || plan_type AS sku_id,
    'copilot_' || plan_type || '_seat' AS usage_type,
    last_activity_date,
    'daily' AS data_lag,
    'estimated' AS cost_source,
    user_name,
    github_team
FROM raw.github_copilot_seats
WHERE usage_date >= $start AND usage_date < $end
"""


def utc_today() -> date:
    return datetime.now(UTC).date()


def live_window_start(today: date, restatement: int) -> date:
    """The first day the live seat list (re)computes: yesterday minus the restatement window."""
    return today - timedelta(days=1 + max(restatement, 0))


class GitHubCopilotResource(SourceResource):
    """Copilot seats of `GITHUB_ORG`, read with `GITHUB_TOKEN` at `GITHUB_API_URL`."""

    enabled_by = f"{TOKEN_SETTING} and {ORG_SETTING}"
    token: str | None = None
    org: str | None = None
    api_url: str = DEFAULT_BASE_URL
    seat_price_usd: str | None = None
    duckdb_path: str = DEFAULT_DUCKDB_PATH  # where stored days are looked up (history is kept)

    @property
    def is_configured(self) -> bool:
        return bool(self.token and self.org)

    streams = True
    raw_table = RAW_TABLE

    def pull_into(self, start: date, end: date, sink: RowSink) -> RawPull:
        """The seat-days to compute, a month of columns at a time into `sink` (no object per seat-day)."""
        client = GitHubCopilotClient(self.token or "", self.org or "", self.api_url, seat_price_usd=self.seat_price())
        days = self.days_to_compute(start, end, utc_today())
        for chunk in client.daily_seat_columns(start, end, days):
            sink.append(RAW_TABLE, chunk, KEY_COLUMNS)
        return RawPull(None, client.request_count, frozenset(days))

    def seat_price(self) -> Decimal | None:
        """The price override, exact: it must fit the money columns (12 decimals) and be positive."""
        if not self.seat_price_usd:
            return None
        try:
            price = parse_money(self.seat_price_usd)
        except ValueError as exc:
            raise SettingsError(f"{PRICE_SETTING}: {exc}; give the monthly seat price in USD, e.g. 19") from None
        if price <= 0:
            raise SettingsError(f"{PRICE_SETTING}={self.seat_price_usd!r} must be a positive amount in USD, e.g. 19")
        return price

    def days_to_compute(self, start: date, end: date, today: date) -> set[date]:
        """Days of the live window, plus older days that have nothing stored yet."""
        live_from = live_window_start(today, restatement_days())
        older = [day for day in days_between(start, min(end, live_from))]
        stored = self.stored_days(older[0], older[-1] + timedelta(days=1)) if older else set()
        return {day for day in days_between(start, end) if day >= live_from or day not in stored}

    def stored_days(self, start: date, end: date) -> set[date]:
        """Days already published (read-only: a run never writes to the published file)."""
        if not Path(self.duckdb_path).exists():
            return set()
        warehouse = DuckDBWarehouse(self.duckdb_path, read_only=True)
        found = warehouse.rows(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $schema AND table_name = $name",
            {"schema": RAW_TABLE.schema, "name": RAW_TABLE.name},
        )
        if not found[0][0]:
            return set()
        rows = warehouse.rows(
            f"SELECT DISTINCT usage_date FROM {RAW_TABLE.qualified_name} "
            "WHERE usage_date >= $start AND usage_date < $end",
            {"start": start, "end": end},
        )
        return {row[0] for row in rows}


SOURCE = Source(
    name="github_copilot",
    focus=FocusProvider("GitHub", "Organization"),
    title="GitHub Copilot seats",
    kinds=frozenset({"github", "duckdb"}),
    raw_table=RAW_TABLE,
    normalise_sql=NORMALISE_SQL,
    resource_key="github_copilot",
    money_column="amount_usd",
    billing_model="seats",
    enabled_by=(TOKEN_SETTING, ORG_SETTING),
    simulator="aispend_pipeline.sources.github_copilot.simulator:GitHubCopilotSimulator",
    build_resource=lambda: GitHubCopilotResource(
        token=env_or(TOKEN_SETTING),
        org=env_or(ORG_SETTING),
        api_url=env_or("GITHUB_API_URL", DEFAULT_BASE_URL),
        seat_price_usd=env_or(PRICE_SETTING),
        duckdb_path=env_or("AISPEND_DUCKDB_PATH", DEFAULT_DUCKDB_PATH),
    ),
)
