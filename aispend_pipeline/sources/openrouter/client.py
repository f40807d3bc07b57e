"""OpenRouter activity: `GET /activity` with a management key (plain `requests`, no Dagster).

The endpoint answers one row per UTC day, model endpoint and (with `group_by=workspace`) workspace, for
the last 30 completed UTC days only, without pagination: one call without `date` returns the whole
window, so any range costs one request (a single day asks for `date=` and gets that day only).

Which days an answer covers follows from the server's own clock (its `Date` header, else ours): the
requested days inside its window, where a day without rows had no activity. Older days are not served,
so the caller leaves them as stored. `usage` is a JSON number of USD with float artefacts
(`0.30000000000000004`): its text is parsed exactly and fitted half-even, never read through a float.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

from aispend_pipeline.core.days import days_between
from aispend_pipeline.core.http import ApiClient
from aispend_pipeline.core.money import fit_money
from aispend_pipeline.errors import SourcePayloadError

SOURCE = "openrouter"
DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
CREDENTIAL_SETTING = "OPENROUTER_API_KEY"
PATH = "/activity"
WINDOW_DAYS = 30  # "the last 30 (completed) UTC days"
COUNT_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")
TEXT_FIELDS = ("model_permaslug", "endpoint_id", "provider_name", "workspace_id")


@dataclass(frozen=True)
class OpenRouterActivityLine:
    usage_date: date
    workspace_id: str | None
    model: str
    model_permaslug: str | None
    endpoint_id: str | None
    provider_name: str | None
    usage_usd: Decimal  # OpenRouter credits spent: the cost
    byok_usage_inference_usd: Decimal | None  # billed by the upstream provider to the user's own key
    requests: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None
    cached_tokens: int | None  # not in the published schema; kept when present


@dataclass(frozen=True)
class ActivityAnswer:
    lines: list[OpenRouterActivityLine]
    days: frozenset[date]  # the requested days the answer covers (empty days included)
    window: tuple[date, date]  # [first, end) of the days the API serves, by its clock


def served_window(today: date) -> tuple[date, date]:
    """The days [first, end) the activity endpoint serves on `today`: the 30 completed days before it."""
    return today - timedelta(days=WINDOW_DAYS), today


def utc_today() -> date:
    return datetime.now(UTC).date()


class OpenRouterActivityClient:
    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        today: Callable[[], date] = utc_today,
        **http_options: Any,
    ) -> None:
        self.api = ApiClient(
            SOURCE,
            base_url,
            {"Authorization": f"Bearer {api_key}"},
            credential_setting=CREDENTIAL_SETTING,
            **http_options,
        )
        self.today = today  # only decides whether a single day may be asked with `date=`
        self.rounding_usd: dict[date, Decimal] = {}

    @property
    def request_count(self) -> int:
        return self.api.request_count

    def activity(self, start: date, end: date) -> ActivityAnswer:
        """The activity lines of the UTC days [start, end) that the API still serves, in one request.

        `date=` is sent only for a single day inside our clock's window: the API refuses a day outside
        its window with a 400, and a call without it answers every served day anyway.
        """
        requested = set(days_between(start, end))
        params: dict[str, str] = {"group_by": "workspace"}
        first, stop = served_window(self.today())
        if len(requested) == 1 and first <= start < stop:
            params["date"] = start.isoformat()
        body, headers = self.api.request("GET", PATH, params=params)
        window = served_window(_server_today(headers) or self.today())
        lines = [line for line in self._lines(body) if line.usage_date in requested]
        lines.sort(key=_sort_key)
        covered = {day for day in requested if window[0] <= day < window[1]}
        return ActivityAnswer(lines, frozenset(covered | {line.usage_date for line in lines}), window)

    def _lines(self, body: Any) -> list[OpenRouterActivityLine]:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise SourcePayloadError(SOURCE, f"{PATH}: expected an object with a 'data' list")
        return [self._line(item, index) for index, item in enumerate(body["data"], start=1)]

    def _line(self, item: Any, index: int) -> OpenRouterActivityLine:
        where = f"row {index} of {PATH}"
        if not isinstance(item, dict):
            raise SourcePayloadError(SOURCE, f"{where} is {type(item).__name__}, expected an object")
        day = _day(item.get("date"), where)
        model = item.get("model")
        if not isinstance(model, str) or not model:
            raise SourcePayloadError(SOURCE, f"field 'model' of {where} is {model!r}, expected a model slug", day)
        where = f"{where} ({model})"
        if "usage" not in item:
            raise SourcePayloadError(SOURCE, f"field 'usage' of {where} is missing", day)
        usage = self._money(item["usage"], "usage", where, day)
        byok = item.get("byok_usage_inference")
        texts = {name: _text(item.get(name), name, where, day) for name in TEXT_FIELDS}
        counts = {name: _count(item.get(name), name, where, day) for name in COUNT_FIELDS}
        return OpenRouterActivityLine(
            usage_date=day,
            model=model,
            usage_usd=usage,
            byok_usage_inference_usd=None if byok is None else self._money(byok, "byok_usage_inference", where, day),
            **texts,
            **counts,
        )

    def _money(self, value: Any, field: str, where: str, day: date) -> Decimal:
        try:
            amount, rounding = fit_money(value)
        except ValueError as exc:
            raise SourcePayloadError(SOURCE, f"field '{field}' of {where}: {exc}", day) from None
        if rounding and field == "usage":
            self.rounding_usd[day] = self.rounding_usd.get(day, Decimal(0)) + rounding
        return amount


def _server_today(headers: Mapping[str, str]) -> date | None:
    """The UTC day by the API's clock (its `Date` header): the window is its, not ours."""
    try:
        moment = parsedate_to_datetime(headers.get("Date") or "")
    except (TypeError, ValueError):
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date()


def _day(value: Any, where: str) -> date:
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise SourcePayloadError(SOURCE, f"field 'date' of {where} is {value!r}, expected a UTC day as YYYY-MM-DD")


def _text(value: Any, field: str, where: str, day: date) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise SourcePayloadError(SOURCE, f"field '{field}' of {where} is {value!r}, expected text", day)


def _count(value: Any, field: str, where: str, day: date) -> int | None:
    """A whole count (tokens, requests); `5.0` is accepted, anything fractional or negative is not."""
    if value is None:
        return None
    if isinstance(value, int | Decimal) and not isinstance(value, bool) and value == int(value) and value >= 0:
        return int(value)
    raise SourcePayloadError(SOURCE, f"field '{field}' of {where} is {value!r}, expected a whole count", day)


def _sort_key(line: OpenRouterActivityLine) -> tuple[str, ...]:
    return (
        line.usage_date.isoformat(),
        line.workspace_id or "",
        line.model,
        line.endpoint_id or "",
        line.provider_name or "",
    )
