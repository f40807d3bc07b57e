"""What the OpenAI and Anthropic cost endpoints share: time parameters, daily buckets, cursor pages, grouping.

Both answer `{data: [bucket...], has_more, next_page}` where `limit` counts daily buckets and the cursor is
opaque; only completed UTC days are served, as the real APIs report finished days only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn, TypeVar

from aispend_pipeline.simulators.server import HttpError, Request

T = TypeVar("T")


def require_header(request: Request, name: str, expected: str, status: int = 401) -> None:
    """Reject a request whose header is missing or differs, without echoing the value received."""
    if request.headers.get(name) != expected:
        what = "missing" if request.headers.get(name) is None else "invalid"
        raise HttpError(status, f"{what} {name} header")


def unix_param(request: Request, name: str) -> datetime | None:
    return _time_param(request, name, lambda raw: datetime.fromtimestamp(int(raw), tz=UTC), "a unix time in seconds")


def rfc3339_param(request: Request, name: str) -> datetime | None:
    return _time_param(request, name, _parse_rfc3339, "an RFC 3339 date-time with a time zone")


def missing(name: str) -> NoReturn:
    raise HttpError(400, f"{name} is required")


def _parse_rfc3339(raw: str) -> datetime:
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(raw)
    return parsed.astimezone(UTC)


def _time_param(request: Request, name: str, parse: Callable[[str], datetime], kind: str) -> datetime | None:
    raw = request.param(name)
    if raw is None:
        return None
    try:
        return parse(raw)
    except (ValueError, OverflowError, OSError):
        raise HttpError(400, f"{name} must be {kind}, got {raw!r}") from None


def check_choices(name: str, values: list[str], allowed: Collection[str]) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise HttpError(400, f"{name} does not accept {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def utc_today() -> date:
    return datetime.now(UTC).date()


def completed_days(start: datetime, end: datetime | None) -> list[date]:
    """UTC days whose bucket starts in [start snapped to midnight, end), up to yesterday."""
    first = start.date()
    stop = utc_today() if end is None else min(_ceil_day(end), utc_today())
    return [first + timedelta(days=i) for i in range((stop - first).days)]


def _ceil_day(moment: datetime) -> date:
    day = moment.date()
    return day if moment == datetime(day.year, day.month, day.day, tzinfo=UTC) else day + timedelta(days=1)


def encode_cursor(day: date) -> str:
    return "page_" + base64.urlsafe_b64encode(f"{day.isoformat()}T00:00:00Z".encode()).decode()


def decode_cursor(cursor: str) -> date:
    try:
        text = base64.urlsafe_b64decode(cursor.removeprefix("page_").encode()).decode()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise HttpError(400, "page is not a cursor this endpoint returned") from None


@dataclass(frozen=True)
class Page:
    days: list[date]
    has_more: bool
    next_page: str | None


def paginate(request: Request, days: list[date], *, max_limit: int, cap: int | None = None) -> Page:
    """The slice of `days` that `limit` and `page` select; `cap` lets tests force smaller pages."""
    raw = request.param("limit", "7") or ""
    if not raw.isdigit() or not 1 <= int(raw) <= max_limit:
        raise HttpError(400, f"limit must be an integer between 1 and {max_limit}, got {raw!r}")
    size = min(int(raw), cap or max_limit)
    first = 0
    cursor = request.param("page")
    if cursor:
        day = decode_cursor(cursor)
        if day not in days:
            raise HttpError(400, "page cursor does not belong to this query")
        first = days.index(day)
    rest = days[first + size :]
    return Page(days[first : first + size], bool(rest), encode_cursor(rest[0]) if rest else None)


def envelope(page: Page, bucket: Callable[[date], dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {**extra, "data": [bucket(day) for day in page.days], "has_more": page.has_more, "next_page": page.next_page}


def aggregate(
    lines: Iterable[T], group_by: Collection[str], dims: Mapping[str, tuple[str, ...]], sums: tuple[str, ...]
) -> list[T]:
    """Collapse lines as the API does for a `group_by`: fields of ungrouped dimensions become null, sums add up.

    `dims` maps each groupable dimension to the dataclass fields it carries; `sums` are the additive fields
    (None absorbs, as a quantity is unknown once a line without one joins the group).
    """
    cleared = {field: None for dim, fields in dims.items() if dim not in group_by for field in fields}
    groups: dict[tuple[Any, ...], T] = {}
    for line in lines:
        line = replace(line, **cleared)  # type: ignore[type-var]
        key = tuple(getattr(line, dim) for dim in dims)
        if key in groups:
            seen = groups[key]
            line = replace(seen, **{f: _add(getattr(seen, f), getattr(line, f)) for f in sums})  # type: ignore[type-var]
        groups[key] = line
    return list(groups.values())


def _add(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a + b
