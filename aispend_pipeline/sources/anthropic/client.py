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

from aispend_pipeline.core.days import bucket_day, merge_daily_buckets, require_every_day
from aispend_pipeline.core.http import ApiClient, iter_cursor_pages
from aispend_pipeline.core.money import cents_to_usd, exact_decimal, fit_money
from aispend_pipeline.errors import SourcePayloadError

SOURCE = "anthropic"
DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
MAX_BUCKETS_PER_PAGE = 31


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
            **http_options,
        )
        self.rounding_usd: dict[date, Decimal] = {}

    @property
    def request_count(self) -> int:
        return self.api.request_count

    def daily_costs(self, start: date, end: date) -> list[AnthropicCostLine]:
        """Every cost line of the UTC days [start, end), 31 days per request at most."""
        params: dict[str, Any] = {
            "starting_at": _rfc3339(start),
            "ending_at": _rfc3339(end),
            "bucket_width": "1d",
            "group_by[]": ["workspace_id", "description"],
            "limit": min(max((end - start).days, 1), MAX_BUCKETS_PER_PAGE),
        }
        buckets = (
            (_bucket_day(bucket, start, end), bucket.get("results") or [])
            for page in iter_cursor_pages(self.api, "/v1/organizations/cost_report", params)
            for bucket in page
        )
        merged = merge_daily_buckets(SOURCE, buckets, start, end)
        lines = [line for day, results in sorted(merged.items()) for line in self._lines(day, results)]
        require_every_day(SOURCE, merged, start, end)
        return lines

    def _lines(self, day: date, results: list[Any]) -> list[AnthropicCostLine]:
        lines = []
        for result in results:
            currency = str(result.get("currency") or "").upper()
            if currency != "USD":
                raise SourcePayloadError(SOURCE, f"field 'currency' is {currency!r}, expected 'USD'", day)
            if "amount" not in result:
                raise SourcePayloadError(SOURCE, "field 'amount' is missing", day)
            try:
                # Cents carry up to 6 decimals: the scale is checked on dollars, after the exact shift.
                amount, rounding = fit_money(cents_to_usd(exact_decimal(result["amount"])))
            except ValueError as exc:
                raise SourcePayloadError(SOURCE, f"field 'amount': {exc}", day) from None
            if rounding:
                self.rounding_usd[day] = self.rounding_usd.get(day, Decimal(0)) + rounding
            lines.append(
                AnthropicCostLine(
                    usage_date=day,
                    workspace_id=result.get("workspace_id"),
                    description=result.get("description"),
                    cost_type=_text(result.get("cost_type")),
                    model=_text(result.get("model")),
                    service_tier=_text(result.get("service_tier")),
                    token_type=_text(result.get("token_type")),
                    context_window=_text(result.get("context_window")),
                    amount_usd=amount,
                )
            )
        return lines


def _rfc3339(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _bucket_day(bucket: Any, start: date, end: date) -> date:
    try:
        started = datetime.fromisoformat(str(bucket["starting_at"]).replace("Z", "+00:00")).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        raise SourcePayloadError(SOURCE, "field 'starting_at' of a bucket is missing or not RFC 3339") from None
    return bucket_day(SOURCE, started, bucket["starting_at"], start, end)


def _text(value: Any) -> str | None:
    """Enums are kept as text, whatever new value the provider adds."""
    return None if value is None else str(value)
