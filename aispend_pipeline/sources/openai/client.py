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

from aispend_pipeline.core.days import bucket_day, merge_daily_buckets, require_every_day, utc_midnight
from aispend_pipeline.core.http import ApiClient, iter_cursor_pages
from aispend_pipeline.core.money import fit_money
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
            **http_options,
        )
        self.rounding_usd: dict[date, Decimal] = {}

    @property
    def request_count(self) -> int:
        return self.api.request_count

    def daily_costs(self, start: date, end: date) -> list[OpenAICostLine]:
        """Every cost line of the UTC days [start, end), in as few requests as the page size allows.

        Every day must have its bucket; a bucket repeated across pages is merged, not counted twice.
        """
        params: dict[str, Any] = {
            "start_time": _unix(start),
            "end_time": _unix(end),
            "bucket_width": "1d",
            "group_by[]": ["project_id", "line_item"],
            "limit": min(max((end - start).days, 1), MAX_BUCKETS_PER_PAGE),
        }
        buckets = (
            (_day(bucket, start, end), bucket.get("results") or [])
            for page in iter_cursor_pages(self.api, "/organization/costs", params)
            for bucket in page
        )
        merged = merge_daily_buckets(SOURCE, buckets, start, end)
        lines = [line for day, results in sorted(merged.items()) for line in self._lines(day, results)]
        require_every_day(SOURCE, merged, start, end)
        return lines

    def _lines(self, day: date, results: list[Any]) -> list[OpenAICostLine]:
        lines = []
        for result in results:
            amount = result.get("amount")
            if not isinstance(amount, dict):
                raise SourcePayloadError(SOURCE, f"field 'amount' is {amount!r}, expected an object with a value", day)
            currency = str(amount.get("currency") or "").lower()
            if currency != "usd":
                raise SourcePayloadError(SOURCE, f"field 'amount.currency' is {currency!r}, expected 'usd'", day)
            lines.append(
                OpenAICostLine(
                    usage_date=day,
                    project_id=result.get("project_id"),
                    line_item=result.get("line_item"),
                    amount_usd=self._money(result, day),
                    quantity=_optional_decimal(result.get("quantity"), "quantity", day),
                    quantity_unit=result.get("quantity_unit"),
                )
            )
        return lines

    def _money(self, result: dict[str, Any], day: date) -> Decimal:
        try:
            amount, rounding = fit_money(result["amount"]["value"])
        except (KeyError, TypeError):
            raise SourcePayloadError(SOURCE, "field 'amount.value' is missing", day) from None
        except ValueError as exc:
            raise SourcePayloadError(SOURCE, f"field 'amount.value': {exc}", day) from None
        if rounding:
            self.rounding_usd[day] = self.rounding_usd.get(day, Decimal(0)) + rounding
        return amount


def _unix(day: date) -> int:
    return int(utc_midnight(day).timestamp())


def _day(bucket: Any, start: date, end: date) -> date:
    try:
        started = datetime.fromtimestamp(int(bucket["start_time"]), tz=UTC)
    except (KeyError, TypeError, ValueError):
        raise SourcePayloadError(SOURCE, "field 'start_time' of a bucket is missing or not a unix time") from None
    return bucket_day(SOURCE, started, bucket["start_time"], start, end)


def _optional_decimal(value: Any, field: str, day: date) -> Decimal | None:
    if value is None:
        return None
    try:
        return fit_money(value)[0]
    except ValueError as exc:
        raise SourcePayloadError(SOURCE, f"field '{field}': {exc}", day) from None
