"""GitHub Copilot seats: `GET /orgs/{org}/copilot/billing` and `/copilot/billing/seats` (no Dagster).

The seats endpoint lists the seats the organisation is billed for *now* (100 per page, `Link` header
pages). A seat costs its plan's monthly list price (Business 19 USD, Enterprise 39 USD, or
`AISPEND_COPILOT_SEAT_PRICE_USD`) spread over the days of each month at the money column's 12
decimals, the remainder units on the month's last days, so a seat's full month sums to the price
exactly. It is billed from the UTC day of `created_at` and up to the day before
`pending_cancellation_date` (the start of the next billing cycle, when the removal takes effect).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import numpy as np

from aispend_pipeline.core.days import days_between
from aispend_pipeline.core.http import ApiClient, Columns, iter_link_pages
from aispend_pipeline.core.money import SCALE_QUANTUM, money_text, spread_over_days
from aispend_pipeline.errors import SourcePayloadError

SOURCE = "github_copilot"
DEFAULT_BASE_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
MAX_PER_PAGE = 100
PLAN_PRICES_USD = {"business": Decimal(19), "enterprise": Decimal(39)}
TOKEN_SETTING = "GITHUB_TOKEN"
ORG_SETTING = "GITHUB_ORG"
PRICE_SETTING = "AISPEND_COPILOT_SEAT_PRICE_USD"


@dataclass(frozen=True)
class Seat:
    """One seat as listed now: who holds it, who granted it, since when, until when, last used when."""

    user_name: str | None  # assignee.login; None for a seat without an assignee (still billed)
    assignee_type: str | None  # User, Team or Organization
    github_team: str | None  # assigning_team.slug; None when assigned individually
    plan_type: str  # business or enterprise (the organisation's plan when the seat says nothing)
    created_day: date
    ends_on: date | None  # pending_cancellation_date: not billed from this day on
    last_activity_at: datetime | None
    last_activity_editor: str | None

    def is_assigned(self, day: date) -> bool:
        return self.created_day <= day and (self.ends_on is None or day < self.ends_on)


SEAT_COLUMNS = (  # the seat's own fields, the same on each of its days
    "user_name",
    "assignee_type",
    "github_team",
    "plan_type",
    "seat_created_date",
    "pending_cancellation_date",
    "last_activity_at",  # ISO 8601 in UTC
    "last_activity_date",  # UTC day of last_activity_at
    "last_activity_editor",
    "monthly_price_usd",
)
CHUNK_DAYS = 31  # seat-days handed over a month at a time: 5,000 seats are ~155,000 rows a chunk


@cache
def daily_shares(price: Decimal, year: int, month: int) -> tuple[Decimal, ...]:
    """The price of one seat for each day of a month: 12 decimals each, summing exactly to `price`."""
    days = [date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]
    return tuple(spread_over_days(price, days, SCALE_QUANTUM))


def seat_day_cost(price: Decimal, day: date) -> Decimal:
    return daily_shares(price, day.year, day.month)[day.day - 1]


class GitHubCopilotClient:
    def __init__(
        self,
        token: str,
        org: str,
        base_url: str = DEFAULT_BASE_URL,
        seat_price_usd: Decimal | None = None,
        **http_options: Any,
    ) -> None:
        self.org = org
        self.seat_price_usd = seat_price_usd
        self.api = ApiClient(
            SOURCE,
            base_url,
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            },
            credential_setting=f"{TOKEN_SETTING} (an organisation owner's token with the manage_billing:copilot "
            "or read:org scope, or a fine-grained token with 'GitHub Copilot Business' read)",
            hints={
                404: f"check {ORG_SETTING} (the organisation's login) and that it has Copilot Business or "
                "Enterprise; only organisation owners can read its Copilot billing",
                422: "GitHub reports a problem with the organisation's payment method",
            },
            **http_options,
        )

    @property
    def request_count(self) -> int:
        return self.api.request_count

    def plan_type(self) -> str:
        """The organisation's Copilot plan (`business` or `enterprise`) from `/copilot/billing`."""
        body = self.api.get_json(f"/orgs/{self.org}/copilot/billing")
        plan = body.get("plan_type") if isinstance(body, dict) else None
        if plan not in PLAN_PRICES_USD:
            if self.seat_price_usd is not None:
                return str(plan or "unknown")
            raise SourcePayloadError(
                SOURCE,
                f"/copilot/billing field 'plan_type' is {plan!r}, expected 'business' or 'enterprise'; "
                f"set {PRICE_SETTING} to price its seats",
            )
        return str(plan)

    def seats(self) -> list[Seat]:
        """Every seat listed now, across `Link` pages of 100."""
        plan = self.plan_type()
        path = f"/orgs/{self.org}/copilot/billing/seats"
        seats: list[Seat] = []
        for page in iter_link_pages(self.api, path, {"per_page": MAX_PER_PAGE}):
            if not isinstance(page, dict) or not isinstance(page.get("seats"), list):
                raise SourcePayloadError(SOURCE, f"{path}: expected an object with a 'seats' list")
            seats.extend(_seat(raw, plan, len(seats) + i + 1) for i, raw in enumerate(page["seats"]))
        return seats

    def price(self, plan_type: str) -> Decimal:
        if self.seat_price_usd is not None:
            return self.seat_price_usd
        return PLAN_PRICES_USD[plan_type]

    def daily_seat_columns(self, start: date, end: date, days: set[date] | None = None) -> Iterator[Columns]:
        """The seat-day lines of [start, end) (or of its `days`): one per seat and day it is assigned.

        As columns named like the raw table's (money as exact text), `CHUNK_DAYS` days at a time: a year of
        thousands of seats is millions of lines, built with one array lookup per day, never an object each.
        """
        wanted = [day for day in days_between(start, end) if days is None or day in days]
        seats = self.seats() if wanted else []
        if not seats:
            return
        never = date.max.toordinal()
        created = np.array([seat.created_day.toordinal() for seat in seats])
        ends = np.array([never if seat.ends_on is None else seat.ends_on.toordinal() for seat in seats])
        prices = [self.price(seat.plan_type) for seat in seats]
        distinct = sorted(set(prices))
        price_of = np.array([distinct.index(price) for price in prices])
        fields = zip(*(_seat_fields(seat, price) for seat, price in zip(seats, prices, strict=True)), strict=True)
        own = {name: _objects(values) for name, values in zip(SEAT_COLUMNS, fields, strict=True)}
        for first in range(0, len(wanted), CHUNK_DAYS):
            held, on_day, amounts = [], [], []
            for day in wanted[first : first + CHUNK_DAYS]:
                seat_rows = np.flatnonzero((created <= day.toordinal()) & (day.toordinal() < ends))
                shares = np.array([money_text(seat_day_cost(price, day)) for price in distinct], dtype=object)
                held.append(seat_rows)
                on_day.append(np.full(len(seat_rows), day, dtype=object))
                amounts.append(shares[price_of[seat_rows]])
            rows = np.concatenate(held)
            if len(rows):
                yield {
                    "usage_date": np.concatenate(on_day),
                    **{name: values[rows] for name, values in own.items()},
                    "amount_usd": np.concatenate(amounts),
                }


def _seat_fields(seat: Seat, price: Decimal) -> tuple[Any, ...]:
    """A seat's values of `SEAT_COLUMNS`, in that order."""
    active = seat.last_activity_at
    return (
        seat.user_name,
        seat.assignee_type,
        seat.github_team,
        seat.plan_type,
        seat.created_day,
        seat.ends_on,
        None if active is None else active.isoformat(),
        None if active is None else active.date(),
        seat.last_activity_editor,
        money_text(price),
    )


def _objects(values: tuple[Any, ...]) -> np.ndarray:
    """A 1-D object array (np.array would try to nest or convert dates and None)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _seat(raw: Any, org_plan: str, number: int) -> Seat:
    """A seat from its JSON; a missing or malformed required field names the seat and the field."""
    if not isinstance(raw, dict):
        raise SourcePayloadError(SOURCE, f"seat {number} of the list is not an object")
    assignee = raw.get("assignee") if isinstance(raw.get("assignee"), dict) else None
    team = raw.get("assigning_team") if isinstance(raw.get("assigning_team"), dict) else None
    login = None if assignee is None else assignee.get("login")
    where = f"seat {number} ({login or 'no assignee'})"
    plan = raw.get("plan_type")
    return Seat(
        user_name=login,
        assignee_type=None if assignee is None else assignee.get("type"),
        github_team=None if team is None else team.get("slug"),
        plan_type=plan if plan in PLAN_PRICES_USD else org_plan,
        created_day=_moment(raw.get("created_at"), where, "created_at").date(),
        ends_on=_day(raw.get("pending_cancellation_date"), where),
        last_activity_at=None
        if raw.get("last_activity_at") is None
        else _moment(raw["last_activity_at"], where, "last_activity_at"),
        last_activity_editor=raw.get("last_activity_editor"),
    )


def _moment(value: Any, where: str, field: str) -> datetime:
    """An ISO 8601 date-time with its offset (GitHub sends e.g. -07:00), in UTC."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise SourcePayloadError(SOURCE, f"{where}: field '{field}' is {value!r}, expected an ISO 8601 date-time")
    return moment.astimezone(UTC)


def _day(value: Any, where: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise SourcePayloadError(
            SOURCE, f"{where}: field 'pending_cancellation_date' is {value!r}, expected YYYY-MM-DD"
        ) from None
