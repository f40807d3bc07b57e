"""UTC days: the grain of every partition and every bucket."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

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
