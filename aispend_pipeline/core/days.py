"""UTC days: the grain of every partition and every bucket."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aispend_pipeline.errors import SourcePayloadError


def days_between(start: date, end: date) -> Iterator[date]:
    """Each day of [start, end)."""
    for offset in range((end - start).days):
        yield start + timedelta(days=offset)


def utc_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def bucket_day(source: str, started: datetime, raw: object, start: date, end: date) -> date:
    """The UTC day a daily bucket covers; a bucket off midnight or outside [start, end) is an error."""
    started = started.astimezone(UTC)
    day = started.date()
    if started != utc_midnight(day) or not start <= day < end:
        raise SourcePayloadError(
            source, f"bucket start {raw!r} is not a UTC midnight within {start}..{end - timedelta(days=1)}", day
        )
    return day


def merge_daily_buckets(
    source: str, buckets: Iterable[tuple[date, list[Any]]], start: date, end: date
) -> dict[date, list[Any]]:
    """Results per day from daily buckets: a bucket repeated across pages (the same day twice) adds only
    results not already seen, so nothing is counted twice. Results are compared by their canonical JSON,
    computed only for a day that comes again (most days come once: a year of hundreds of accounts' groups
    was otherwise serialised line by line)."""
    merged: dict[date, list[Any]] = {}
    seen: dict[date, set[str]] = {}  # a repeated day's results, canonical
    for day, results in buckets:
        if day not in merged:
            merged[day] = list(results)
            continue
        earlier = seen.get(day)
        if earlier is None:
            earlier = seen[day] = {_canonical(result) for result in merged[day]}
        keys = [_canonical(result) for result in results]
        merged[day].extend(r for r, key in zip(results, keys, strict=True) if key not in earlier)
        earlier.update(keys)
    return merged


def _canonical(result: Any) -> str:
    return json.dumps(result, sort_keys=True, default=str)


def require_every_day(source: str, present: Iterable[date], start: date, end: date) -> None:
    """Every day of [start, end) must have its bucket: a missing day is a fault, never a silent $0."""
    have = set(present)
    missing = [day for day in days_between(start, end) if day not in have]
    if missing:
        more = f" and {len(missing) - 1} more day(s)" if len(missing) > 1 else ""
        raise SourcePayloadError(
            source,
            f"the answer has no bucket for {missing[0]}{more}; the API returns one per day, empty days included, "
            "so stored days were kept: re-run later",
        )
