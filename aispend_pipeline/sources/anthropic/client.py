"""Anthropic organisation costs: `GET /v1/organizations/cost_report` with an admin key (no Dagster).

Grouped by workspace and description, so input, output, cache-read and cache-write tokens stay
separate lines. `amount` is a decimal string in **cents**; it is converted to dollars exactly here,
at the client boundary. `limit` is at most 31 daily buckets per page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from aispend_pipeline.core.days import bucket_day
from aispend_pipeline.core.http import ApiClient, fetch_daily_buckets
from aispend_pipeline.core.money import MoneyValueError, money_texts
from aispend_pipeline.errors import SourcePayloadError

SOURCE = "anthropic"
DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
MAX_BUCKETS_PER_PAGE = 31
# Kept as text, whatever new enum value the provider adds (workspace and description are ids and names).
TEXT_FIELDS = ("workspace_id", "description", "cost_type", "model", "service_tier", "token_type", "context_window")


@dataclass(frozen=True)
class AnthropicCostLine:
    usage_date: date
    workspace_id: str | None
    description: str | None
    cost_type: str | None
    model: str | None
    service_tier: str | None
    token_type: str | None
    context_window: str | None
    amount_usd: Decimal


class AnthropicCostsClient:
    def __init__(self, admin_key: str, base_url: str = DEFAULT_BASE_URL, **http_options: Any) -> None:
        self.api = ApiClient(
            SOURCE,
            base_url,
            {"x-api-key": admin_key, "anthropic-version": API_VERSION},
            credential_setting="ANTHROPIC_ADMIN_KEY",
            parse_float=str,  # amounts keep their text; money_texts makes them exact in one pass
            **http_options,
        )
        self.rounding_usd: dict[date, Decimal] = {}

    @property
    def request_count(self) -> int:
        return self.api.request_count

    def daily_costs(self, start: date, end: date) -> list[AnthropicCostLine]:
        """Every cost line of the UTC days [start, end), as records (the pipeline reads the columns)."""
        columns = self.daily_cost_columns(start, end)
        return [
            AnthropicCostLine(*row[:-1], amount_usd=Decimal(row[-1])) for row in zip(*columns.values(), strict=True)
        ]

    def daily_cost_columns(self, start: date, end: date) -> dict[str, list[Any]]:
        """The cost lines of the UTC days [start, end) as columns named like `AnthropicCostLine`'s fields,
        dollars as exact text, 31 days per request at most (no object per line)."""
        params: dict[str, Any] = {
            "starting_at": _rfc3339(start),
            "ending_at": _rfc3339(end),
            "bucket_width": "1d",
            "group_by[]": ["workspace_id", "description"],
            "limit": min(max((end - start).days, 1), MAX_BUCKETS_PER_PAGE),
        }
        return fetch_daily_buckets(
            self.api, "/v1/organizations/cost_report", params, _bucket_day, start, end, self._columns
        )

    def _columns(self, days: list[tuple[date, list[Any]]]) -> dict[str, list[Any]]:
        columns: dict[str, list[Any]] = {name: [] for name in TEXT_FIELDS}
        usage_dates: list[date] = []
        amounts = []
        texts = [(name, columns[name]) for name in TEXT_FIELDS]
        for day, results in days:
            for result in results:
                currency = result.get("currency")
                if currency != "USD" and str(currency or "").upper() != "USD":
                    raise SourcePayloadError(
                        SOURCE, f"field 'currency' is {str(currency or '').upper()!r}, expected 'USD'", day
                    )
                if "amount" not in result:
                    raise SourcePayloadError(SOURCE, "field 'amount' is missing", day)
                usage_dates.append(day)
                amounts.append(result["amount"])
                for name, column in texts:
                    value = result.get(name)
                    column.append(value if value is None or type(value) is str else str(value))
        try:
            # Cents carry up to 6 decimals: the scale is checked on dollars, after the exact shift.
            dollars, rounding = money_texts(amounts, shift=-2)
        except MoneyValueError as exc:
            raise SourcePayloadError(SOURCE, f"field 'amount': {exc}", usage_dates[exc.index]) from None
        for index, rounded in rounding.items():
            day = usage_dates[index]
            self.rounding_usd[day] = self.rounding_usd.get(day, Decimal(0)) + rounded
        return {"usage_date": usage_dates, **columns, "amount_usd": dollars}


def _rfc3339(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _bucket_day(bucket: Any, start: date, end: date) -> date:
    try:
        started = datetime.fromisoformat(str(bucket["starting_at"]).replace("Z", "+00:00")).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        raise SourcePayloadError(SOURCE, "field 'starting_at' of a bucket is missing or not RFC 3339") from None
    return bucket_day(SOURCE, started, bucket["starting_at"], start, end)
