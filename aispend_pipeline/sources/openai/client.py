"""OpenAI organisation costs: `GET /organization/costs` with an admin key (plain `requests`, no Dagster).

Daily buckets grouped by project and line item, cursor pagination (`page` = previous `next_page`
while `has_more`). `limit` counts buckets (1-180), so a 60-day range is one request per page of
results. `amount.value` is in dollars and arrives as a JSON number or a string: both stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from aispend_pipeline.core.days import bucket_day, utc_midnight
from aispend_pipeline.core.http import ApiClient, fetch_daily_buckets
from aispend_pipeline.core.money import MoneyValueError, money_texts
from aispend_pipeline.errors import SourcePayloadError

SOURCE = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_BUCKETS_PER_PAGE = 180


@dataclass(frozen=True)
class OpenAICostLine:
    usage_date: date
    project_id: str | None
    line_item: str | None
    amount_usd: Decimal
    quantity: Decimal | None
    quantity_unit: str | None


class OpenAICostsClient:
    def __init__(self, admin_key: str, base_url: str = DEFAULT_BASE_URL, **http_options: Any) -> None:
        self.api = ApiClient(
            SOURCE,
            base_url,
            {"Authorization": f"Bearer {admin_key}"},
            credential_setting="OPENAI_ADMIN_KEY",
            parse_float=str,  # amounts keep their text; money_texts makes them exact in one pass
            **http_options,
        )
        self.rounding_usd: dict[date, Decimal] = {}

    @property
    def request_count(self) -> int:
        return self.api.request_count

    def daily_costs(self, start: date, end: date) -> list[OpenAICostLine]:
        """Every cost line of the UTC days [start, end), as records (the pipeline reads the columns)."""
        columns = self.daily_cost_columns(start, end)
        return [
            OpenAICostLine(day, project, item, Decimal(amount), None if quantity is None else Decimal(quantity), unit)
            for day, project, item, amount, quantity, unit in zip(*columns.values(), strict=True)
        ]

    def daily_cost_columns(self, start: date, end: date) -> dict[str, list[Any]]:
        """The cost lines of the UTC days [start, end) as columns named like `OpenAICostLine`'s fields, money
        as exact text, in as few requests as the page size allows (no object per line).

        Every day must have its bucket; a bucket repeated across pages is merged, not counted twice.
        """
        params: dict[str, Any] = {
            "start_time": _unix(start),
            "end_time": _unix(end),
            "bucket_width": "1d",
            "group_by[]": ["project_id", "line_item"],
            "limit": min(max((end - start).days, 1), MAX_BUCKETS_PER_PAGE),
        }
        return fetch_daily_buckets(self.api, "/organization/costs", params, _day, start, end, self._columns)

    def _columns(self, days: list[tuple[date, list[Any]]]) -> dict[str, list[Any]]:
        usage_dates: list[date] = []
        projects, items, amounts, quantities, units = [], [], [], [], []
        for day, results in days:
            for result in results:
                amount = result.get("amount")
                if not isinstance(amount, dict):
                    raise SourcePayloadError(
                        SOURCE, f"field 'amount' is {amount!r}, expected an object with a value", day
                    )
                currency = amount.get("currency")
                if currency != "usd" and str(currency or "").lower() != "usd":
                    raise SourcePayloadError(
                        SOURCE, f"field 'amount.currency' is {str(currency or '').lower()!r}, expected 'usd'", day
                    )
                if "value" not in amount:
                    raise SourcePayloadError(SOURCE, "field 'amount.value' is missing", day)
                usage_dates.append(day)
                projects.append(result.get("project_id"))
                items.append(result.get("line_item"))
                amounts.append(amount["value"])
                quantities.append(result.get("quantity"))
                units.append(result.get("quantity_unit"))
        try:
            amount_texts, rounding = money_texts(amounts)
        except MoneyValueError as exc:
            raise SourcePayloadError(SOURCE, f"field 'amount.value': {exc}", usage_dates[exc.index]) from None
        for index, rounded in rounding.items():
            day = usage_dates[index]
            self.rounding_usd[day] = self.rounding_usd.get(day, Decimal(0)) + rounded
        try:
            quantity_texts = money_texts(quantities, optional=True)[0]
        except MoneyValueError as exc:
            raise SourcePayloadError(SOURCE, f"field 'quantity': {exc}", usage_dates[exc.index]) from None
        return {
            "usage_date": usage_dates,
            "project_id": projects,
            "line_item": items,
            "amount_usd": amount_texts,
            "quantity": quantity_texts,
            "quantity_unit": units,
        }


def _unix(day: date) -> int:
    return int(utc_midnight(day).timestamp())


def _day(bucket: Any, start: date, end: date) -> date:
    try:
        started = datetime.fromtimestamp(int(bucket["start_time"]), tz=UTC)
    except (KeyError, TypeError, ValueError):
        raise SourcePayloadError(SOURCE, "field 'start_time' of a bucket is missing or not a unix time") from None
    return bucket_day(SOURCE, started, bucket["start_time"], start, end)
