"""GitHub's Copilot billing endpoints for one organisation: `/orgs/{org}/copilot/billing` and `/billing/seats`.

Faithful to what the real client must survive (GitHub's REST description, version 2022-11-28): a Bearer
(or `token`) credential, 401 / 404 answers in GitHub's `{"message", "documentation_url", "status"}`
shape, `per_page` (default 50, capped at 100 as GitHub does), `Link` header pages whose `rel="next"`
URL uses the `/organizations/{id}/...` form, `total_seats` on every page, rate-limit answers (403 with
`x-ratelimit-remaining: 0` and `x-ratelimit-reset`, or a secondary limit with `Retry-After`), seats
without an assignee, seats without `plan_type`, and `last_activity_at` with non-UTC offsets.

Its seat list is the list as of `as_of` (default: today): seats created months ago, one mid-month,
inactive ones, one pending cancellation at the next billing cycle.
"""

from __future__ import annotations

import calendar
import random
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from aispend_pipeline.simulators.base import HttpSimulator
from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.simulators.paging import utc_today
from aispend_pipeline.simulators.server import HttpError, Reply, Request, Route

DEMO_TOKEN = "ghp_simulatorCopilotToken0000000000000"
ORG_LOGIN = "acme-ai"
ORG_ID = 9919
API_VERSIONS = ("2022-11-28", "2026-03-10")
DEFAULT_PER_PAGE, MAX_PER_PAGE = 50, 100
PRICES = {"business": Decimal(19), "enterprise": Decimal(39)}
DOCS = "https://docs.github.com/rest"
SEATS_DOCS = DOCS + "/copilot/copilot-user-management#list-all-copilot-seat-assignments-for-an-organization"
RATE_LIMIT_DOCS = DOCS + "/using-the-rest-api/rate-limits-for-the-rest-api"
PACIFIC = timezone(timedelta(hours=-7))

# GitHub team slug -> demo team (cost centre, product)
TEAMS = {
    "search-eng": ("search", "CC-210", "Search"),
    "support-tools": ("support", "CC-220", "Support Assistant"),
    "data-eng": ("data-platform", "CC-300", "Data Platform"),
    "platform": ("platform", "CC-100", "Developer Platform"),
    "ml-research": ("research", "CC-500", "Research"),
}
# users mapped by name, whatever team assigned them
USERS = {"kchen": ("research", "CC-500", "Research"), "growth-pm": ("growth", "CC-410", "Growth Experiments")}


@dataclass(frozen=True)
class SimSeat:
    login: str | None
    team: str | None
    created_at: datetime
    pending_cancellation_date: date | None
    last_activity_at: datetime | None
    editor: str | None
    plan_type: str | None  # None: the field is left out (the org's plan applies)

    def is_assigned(self, day: date) -> bool:
        ends = self.pending_cancellation_date
        return self.created_at.astimezone(UTC).date() <= day and (ends is None or day < ends)


def month_start(day: date, months_back: int = 0) -> date:
    year, month = day.year, day.month - months_back
    while month < 1:
        year, month = year - 1, month + 12
    return date(year, month, 1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def seat_roster(org: SyntheticOrg, as_of: date, plan: str) -> list[SimSeat]:
    """The seats listed on `as_of`: deterministic for (seed, as_of), activity varies with the seed."""
    rng = random.Random(f"{org.seed}|github_copilot|{as_of.isoformat()}")

    def at(day: date, hour: int = 9) -> datetime:
        return datetime(day.year, day.month, day.day, hour, rng.randrange(60), tzinfo=UTC)

    def active(days_ago: int | None, offset: bool = False) -> datetime | None:
        if days_ago is None:
            return None
        # Sent with an offset, the moment is early UTC, so its local (-07:00) date is the day before.
        moment = at(as_of - timedelta(days=days_ago), 3 if offset else rng.randrange(1, 23))
        return moment.astimezone(PACIFIC) if offset else moment

    long_ago = as_of - timedelta(days=400)
    mid_last_month = month_start(as_of, 1) + timedelta(days=14)
    seats = [
        # (login, team, created, pending cancellation, days since last activity, offset, editor, plan stated)
        ("ada", "search-eng", long_ago, None, 1, False, "vscode/1.105.0/copilot/1.380.0", True),
        ("grace", "search-eng", long_ago, None, 2, True, "JetBrains-IC/2025.2/copilot-intellij/1.5.60", True),
        ("linus", "search-eng", as_of - timedelta(days=200), None, None, False, None, True),  # never used
        ("kchen", "search-eng", as_of - timedelta(days=150), None, 1, False, "vscode/1.105.0/copilot/1.380.0", True),
        ("mhopper", "support-tools", long_ago, None, 3, True, "vscode/1.104.2/copilot/1.372.0", True),
        ("tberners", "support-tools", mid_last_month, None, 1, False, "neovim/0.11.4/copilot.lua/1.2", True),
        ("dritchie", "data-eng", long_ago, None, 46, False, "vim/9.1/copilot.vim/1.41.0", True),  # inactive
        ("bkernighan", "data-eng", long_ago, next_month(as_of), 20, False, "vscode/1.103.0/copilot/1.350.0", True),
        ("sbourne", "platform", as_of - timedelta(days=300), None, 1, True, "vscode/1.105.0/copilot/1.380.0", False),
        (None, "platform", as_of - timedelta(days=90), None, None, False, None, True),  # no assignee
        ("yann", "ml-research", long_ago, None, 2, False, "copilot-cli/0.0.330", True),
        ("fei", "ml-research", as_of - timedelta(days=60), None, 5, False, "vscode/1.105.0/copilot/1.380.0", True),
        ("growth-pm", None, as_of - timedelta(days=120), None, 1, False, "vscode/1.105.0/copilot/1.380.0", True),
        ("contractor-x", None, as_of - timedelta(days=35), None, 33, True, "vscode/1.101.0/copilot/1.330.0", True),
    ]
    return [
        SimSeat(login, team, at(created), ends, active(ago, offset), editor, plan if stated else None)
        for login, team, created, ends, ago, offset, editor, stated in seats
    ]


def daily_share(price: Decimal, day: date) -> Decimal:
    """A month's price over its days in units of 1e-12, the remainder units on the last days."""
    days = calendar.monthrange(day.year, day.month)[1]
    units = int(price * 10**12)
    base, remainder = divmod(units, days)
    return Decimal(base + (1 if day.day > days - remainder else 0)).scaleb(-12)


def error_body(status: int, message: str, documentation_url: str = DOCS) -> dict[str, Any]:
    """GitHub's error envelope."""
    return {"message": message, "documentation_url": documentation_url, "status": str(status)}


class GitHubCopilotSimulator(HttpSimulator):
    source = "github_copilot"
    token = DEMO_TOKEN
    org_login = ORG_LOGIN

    def __init__(self, org: SyntheticOrg, *, max_page_size: int | None = None, plan: str = "business") -> None:
        super().__init__(org, max_page_size=max_page_size)
        self.plan = plan
        self.as_of: date | None = None  # None: today
        self.removed: set[str] = set()  # logins whose seats have left the list (a cycle ended since)
        self.per_page_seen: list[int] = []

    @property
    def env(self) -> dict[str, str]:
        return {"GITHUB_TOKEN": self.token, "GITHUB_ORG": self.org_login, "GITHUB_API_URL": self.url}

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return error_body(status, message)

    def seats(self) -> list[SimSeat]:
        return [s for s in seat_roster(self.org, self.as_of or utc_today(), self.plan) if s.login not in self.removed]

    def expected_total_usd(self, day: date, price_usd: Decimal | None = None) -> Decimal:
        assigned = [seat for seat in self.seats() if seat.is_assigned(day)]
        return sum((daily_share(price_usd or PRICES[s.plan_type or self.plan], day) for s in assigned), Decimal(0))

    def demo_mapping_rows(self) -> list[dict[str, str]]:
        def rule(dimension: str, value: str, target: tuple[str, str, str]) -> dict[str, str]:
            team, centre, product = target
            return {"provider": "github_copilot", "dimension": dimension, "value": value, "team": team} | {
                "cost_centre": centre,
                "product": product,
            }

        return [rule("github_team", slug, t) for slug, t in TEAMS.items()] + [
            rule("user", login, t) for login, t in USERS.items()
        ]

    def rate_limit_next(self, times: int = 1, *, secondary: bool = False, status: int = 403) -> None:
        """The next answers are GitHub rate limits: the primary limit exhausted (reset now), or a secondary one."""
        if secondary:
            headers = {"retry-after": "0"}
            body = error_body(
                status,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                RATE_LIMIT_DOCS,
            )
        else:
            headers = {
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-used": "5000",
                "x-ratelimit-reset": str(int(time.time())),
                "x-ratelimit-resource": "core",
            }
            body = error_body(status, "API rate limit exceeded for user ID 1.", RATE_LIMIT_DOCS)
        self.fail_next(status, headers, body, times)

    @property
    def routes(self) -> dict[str, Route]:
        return {
            "GET re:/orgs/([^/]+)/copilot/billing": self.billing,
            "GET re:/orgs/([^/]+)/copilot/billing/seats": self.seat_page,
            "GET re:/organizations/([0-9]+)/copilot/billing/seats": self.seat_page,
        }

    def _authorise(self, request: Request) -> None:
        credential = request.headers.get("Authorization")
        if credential is None:
            raise HttpError(401, "Requires authentication")
        scheme, _, value = credential.partition(" ")
        if scheme.lower() not in ("bearer", "token") or value != self.token:
            raise HttpError(401, "Bad credentials")
        version = request.headers.get("X-GitHub-Api-Version")
        if version is not None and version not in API_VERSIONS:
            raise HttpError(400, f"The API version {version} is not supported.")

    def _org(self, request: Request) -> None:
        assert request.match is not None
        name = request.match.group(1)
        if name != self.org_login and name != str(ORG_ID):
            raise HttpError(404, "Not Found")

    def billing(self, request: Request) -> dict[str, Any]:
        self._authorise(request)
        self._org(request)
        seats = self.seats()
        today = self.as_of or utc_today()
        cycle = month_start(today)
        used = [s for s in seats if s.last_activity_at and s.last_activity_at.astimezone(UTC).date() >= cycle]
        return {
            "seat_breakdown": {
                "total": len(seats),
                "added_this_cycle": sum(s.created_at.date() >= cycle for s in seats),
                "pending_invitation": 0,
                "pending_cancellation": sum(s.pending_cancellation_date is not None for s in seats),
                "active_this_cycle": len(used),
                "inactive_this_cycle": len(seats) - len(used),
            },
            "seat_management_setting": "assign_selected",
            "ide_chat": "enabled",
            "platform_chat": "enabled",
            "cli": "enabled",
            "public_code_suggestions": "block",
            "plan_type": self.plan,
        }

    def seat_page(self, request: Request) -> Reply:
        self._authorise(request)
        self._org(request)
        per_page = _positive(request, "per_page", DEFAULT_PER_PAGE)
        page = _positive(request, "page", 1)
        self.per_page_seen.append(per_page)
        size = min(per_page, MAX_PER_PAGE, self.max_page_size or MAX_PER_PAGE)
        seats = self.seats()
        last = max((len(seats) + size - 1) // size, 1)
        chunk = seats[(page - 1) * size : page * size]
        link = f"{self.url}/organizations/{ORG_ID}/copilot/billing/seats?per_page={per_page}&page="
        rels = ([(page + 1, "next"), (last, "last")] if page < last else []) + (
            [(page - 1, "prev"), (1, "first")] if page > 1 else []
        )
        headers = {"Link": ", ".join(f'<{link}{n}>; rel="{rel}"' for n, rel in rels)} if rels else {}
        headers |= {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999", "x-ratelimit-resource": "core"}
        return Reply({"total_seats": len(seats), "seats": [self.seat_json(s) for s in chunk]}, headers=headers)

    def seat_json(self, seat: SimSeat) -> dict[str, Any]:
        assignee = None if seat.login is None else {"login": seat.login, "id": zlib.crc32(seat.login.encode())}
        team = None if seat.team is None else {"id": zlib.crc32(seat.team.encode()), "slug": seat.team}
        body: dict[str, Any] = {
            "created_at": _iso(seat.created_at),
            "updated_at": _iso(seat.created_at),
            "pending_cancellation_date": _iso_day(seat.pending_cancellation_date),
            "last_activity_at": _iso(seat.last_activity_at),
            "last_activity_editor": seat.editor,
            "last_authenticated_at": _iso(seat.last_activity_at),
            "assignee": None if assignee is None else assignee | {"type": "User", "site_admin": False},
            "assigning_team": None if team is None else team | {"name": str(seat.team).replace("-", " ").title()},
            "organization": None,
        }
        if seat.plan_type is not None:
            body["plan_type"] = seat.plan_type
        return body


def _iso(moment: datetime | None) -> str | None:
    """ISO 8601 as GitHub writes it: `Z` for UTC, the offset otherwise (e.g. -07:00)."""
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _iso_day(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _positive(request: Request, name: str, default: int) -> int:
    raw = request.param(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise HttpError(422, f"Invalid value for {name}: {raw!r}")
    return int(raw)
