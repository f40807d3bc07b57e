"""GitHub Copilot seats and AWS Cost Explorer for the scale benchmark, rendered ahead of the run.

GitHub Copilot (at `--scale 1`: 5,000 seats, one per person): `/orgs/{org}/copilot/billing` and the
`/copilot/billing/seats` pages of 100, each page's `Link` header naming the next one in GitHub's
`/organizations/{id}/...` form. Most seats are granted through the holder's GitHub team, some
individually; some were created during the year, some carry a `pending_cancellation_date` (inside the
year, so the client bills them up to the day before, or at the next cycle's start), a tenth are on the
Enterprise plan.

AWS Cost Explorer (at `--scale 1`: 300 linked accounts): Amazon Bedrock in every account (seven usage
types a day, most with the `team` cost-allocation tag, some untagged) and Amazon Q in a quarter of them.
With far more accounts than usage types, the client fixes (service, usage type) by filter; the awsJson1.1
answers of its requests are rendered per (operation, first day, Dimension or GroupBy keys, SERVICE and
USAGE_TYPE filters, NextPageToken): GetDimensionValues of SERVICE and of LINKED_ACCOUNT, the GetCostAndUsage
grouped by SERVICE and USAGE_TYPE, and one per (service, usage type) grouped by LINKED_ACCOUNT and the tag.
Pages hold up to 1,000 groups (a day without groups takes one slot), so a day can be split across two
pages and appear on both, as Cost Explorer pages.

Each renderer fills the organisation's pages, `Link` headers, org_mapping rows, exact expected totals
per provider-day and the fewest requests the page sizes allow.
"""

from __future__ import annotations

import base64
import calendar
import json
import math
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scale_benchmark import Organisation

GITHUB_TOKEN, GITHUB_ORG, GITHUB_ORG_ID = "ghp_scalebenchmark", "scale-org", 4242
GITHUB_API_VERSION = "2022-11-28"
COPILOT_BILLING_PATH = f"/orgs/{GITHUB_ORG}/copilot/billing"
COPILOT_SEATS_PATH = f"/orgs/{GITHUB_ORG}/copilot/billing/seats"
COPILOT_NEXT_PATH = f"/organizations/{GITHUB_ORG_ID}/copilot/billing/seats"  # where `Link` points
SEATS_PAGE = 100  # GitHub's maximum per_page
SEAT_PRICE_USD = {"business": 19, "enterprise": 39}
BASE_URL = "{base}"  # in `Link` headers: the server's URL, put in once it listens
UTC_MINUS_7 = timezone(timedelta(hours=-7))

AWS_KEY_ID, AWS_SECRET = "AKIASCALEBENCHMARK01", "scale-benchmark-secret-access-key-000000"
CE_TARGET = "AWSInsightsIndexService."
CE_PAGE = 1000  # groups (or empty days) per page, as the project's Cost Explorer simulator pages
BEDROCK, AMAZON_Q = "Amazon Bedrock", "Amazon Q"
CE_SERVICES = (BEDROCK, "Amazon Elastic Compute Cloud - Compute", AMAZON_Q, "Amazon Simple Storage Service", "Tax")
TAG_KEY = "team"
BEDROCK_USAGE = (  # usage type, UsageQuantity unit, whose tag (the account's team, another team, none), share
    ("USE1-Claude3Sonnet-input-tokens", "Count", "own", 0.22),
    ("USE1-Claude3Sonnet-output-tokens", "Count", "own", 0.33),
    ("USE1-Claude3Sonnet-cache-read-input-tokens", "Count", "own", 0.05),
    ("USW2-NovaPro-input-tokens", "Count", "other", 0.10),
    ("USW2-NovaPro-output-tokens", "Count", "other", 0.16),
    ("USE1-TitanEmbeddingsV2-Text-input-tokens", "Count", "none", 0.04),
    ("USE1-Guardrail-ContentPolicyTextUnits", "Units", "none", 0.10),
)
Q_USAGE_TYPE = "Global-QDeveloperPro-User"  # subscriptions carry no tags


def call_minimum(org: Organisation) -> dict[str, tuple[tuple[str, ...], int]]:
    """The two sources' requests a year, by what the server counts, against the fewest the page sizes allow."""
    return {
        "github_copilot billing + seats": (
            (COPILOT_BILLING_PATH, COPILOT_SEATS_PATH, COPILOT_NEXT_PATH),
            1 + math.ceil(org.seats / SEATS_PAGE),
        ),
        "aws GetDimensionValues": (("GetDimensionValues",), 2),
        "aws GetCostAndUsage": (("GetCostAndUsage",), org.ce_minimum),
    }


# --- GitHub Copilot


def render_copilot(org: Organisation, rng: np.random.Generator) -> None:
    """The seats of the organisation's people (one each), their answers, mapping rows and daily totals."""
    n, days, first, last = org.seats, len(org.days), org.first, org.days[-1]
    holder_team = np.arange(n) % org.teams
    by_team = rng.random(n) < 0.85  # granted through the holder's GitHub team, else individually
    user_rule = ~by_team & (rng.random(n) < 0.9)  # individual seats with a user rule (the rest: unallocated)
    moved = by_team & (rng.random(n) < 0.03)  # a user rule, which beats the team rule: another team
    enterprise = rng.random(n) < 0.1
    plan_absent = ~enterprise & (rng.random(n) < 0.05)  # no plan_type: the organisation's (business)
    # Day index of created_at: a quarter during the year, the rest before it.
    created = np.where(rng.random(n) < 0.25, rng.integers(0, days, n), -rng.integers(1, 700, n))
    # Day index of pending_cancellation_date (-1: none): inside the year, or the next cycle's start.
    cancels = np.maximum(created, 0) + rng.integers(20, 200, n)
    ends = np.where((rng.random(n) < 0.05) & (cancels < days), cancels, -1)
    at_cycle = (ends < 0) & (rng.random(n) < 0.03)
    ends[at_cycle] = ((last.replace(day=28) + timedelta(days=4)).replace(day=1) - first).days
    midnight = datetime(first.year, first.month, first.day, tzinfo=UTC)
    seats = []
    for i in range(n):
        created_at = midnight + timedelta(days=int(created[i]), seconds=int(rng.integers(0, 86400)))
        used = None if i % 9 == 0 else max(created_at, midnight + timedelta(days=days - int(rng.integers(1, 60))))
        team = f"gh-team-{holder_team[i]:03d}" if by_team[i] else None
        seat: dict[str, Any] = {
            "created_at": _github_time(created_at, i),
            "updated_at": _github_time(created_at, i),
            "pending_cancellation_date": None if ends[i] < 0 else str(first + timedelta(days=int(ends[i]))),
            "last_activity_at": None if used is None else _github_time(used, i),
            "last_activity_editor": None if used is None else "vscode/1.96.2/copilot/1.254.0",
            "assignee": {"login": f"user-{i:05d}", "id": 10**6 + i, "type": "User", "site_admin": False},
            "assigning_team": None if team is None else {"id": 10**5 + int(holder_team[i]), "slug": team, "name": team},
            "organization": None,
        }
        if not plan_absent[i]:
            seat["plan_type"] = "enterprise" if enterprise[i] else "business"
        seats.append(json.dumps(seat, separators=(",", ":")))
    _copilot_pages(org, seats)
    org.mapping += [
        f"github_copilot,github_team,gh-team-{t:03d},team-{t:03d},CC-{t:03d},Product {t % 50},,"
        for t in range(org.teams)
    ]
    org.mapping += [
        f"github_copilot,user,user-{i:05d},team-{(i * 7 + 3) % org.teams:03d},CC-{(i * 7 + 3) % org.teams:03d},,,"
        for i in np.flatnonzero(user_rule | moved)
    ]
    # Expected: per plan, the seats assigned on a day (created <= day < pending cancellation) x its day share.
    price = np.where(enterprise, SEAT_PRICE_USD["enterprise"], SEAT_PRICE_USD["business"])
    for monthly in sorted(set(SEAT_PRICE_USD.values())):
        change = np.zeros(days + 1, dtype=np.int64)
        np.add.at(change, np.clip(created[price == monthly], 0, None), 1)
        stops = ends[price == monthly]
        np.add.at(change, np.where((stops >= 0) & (stops < days), stops, days), -1)
        for day, count in zip(org.days, np.cumsum(change)[:-1], strict=True):
            key = ("github_copilot", day)
            units = int(count) * _seat_day_units(monthly, day)
            org.expected_usd[key] = org.expected_usd.get(key, Decimal(0)) + Decimal(units).scaleb(-12)
            org.lines["github_copilot"] = org.lines.get("github_copilot", 0) + int(count)


def _seat_day_units(monthly_usd: int, day: date) -> int:
    """A seat's cost on `day` in 10^-12 USD: the month's price split evenly, the remainder on its last days."""
    month_days = calendar.monthrange(day.year, day.month)[1]
    base, remainder = divmod(monthly_usd * 10**12, month_days)
    return base + (1 if day.day > month_days - remainder else 0)


def _github_time(moment: datetime, i: int) -> str:
    """ISO 8601 as GitHub writes it: `Z`, or (every fifth seat) the -07:00 offset GitHub also sends."""
    if i % 5 == 0:
        return moment.astimezone(UTC_MINUS_7).isoformat()
    return moment.isoformat().replace("+00:00", "Z")


def _copilot_pages(org: Organisation, seats: list[str]) -> None:
    org.pages[(COPILOT_BILLING_PATH, "")] = json.dumps(
        {
            "seat_breakdown": {"total": len(seats), "added_this_cycle": 0, "pending_invitation": 0,
                               "pending_cancellation": 0, "active_this_cycle": len(seats), "inactive_this_cycle": 0},
            "seat_management_setting": "assign_selected",
            "public_code_suggestions": "block",
            "plan_type": "business",
        }
    ).encode()  # fmt: skip
    pages = [seats[i : i + SEATS_PAGE] for i in range(0, len(seats), SEATS_PAGE)]
    link = f"{BASE_URL}{COPILOT_NEXT_PATH}?per_page={SEATS_PAGE}&page="
    for n, chunk in enumerate(pages, start=1):
        key = (COPILOT_SEATS_PATH, "") if n == 1 else (COPILOT_NEXT_PATH, str(n))
        org.pages[key] = f'{{"total_seats":{len(seats)},"seats":[{",".join(chunk)}]}}'.encode()
        rels = ([(n + 1, "next"), (len(pages), "last")] if n < len(pages) else []) + (
            [(n - 1, "prev"), (1, "first")] if n > 1 else []
        )
        if rels:
            org.links[key] = ", ".join(f'<{link}{p}>; rel="{rel}"' for p, rel in rels)


# --- AWS Cost Explorer


def render_aws(org: Organisation, rng: np.random.Generator) -> None:
    """The linked accounts' Bedrock and Amazon Q lines, as Cost Explorer answers the client's requests."""
    accounts = [f"{210000000000 + 7919 * i:012d}" for i in range(org.accounts)]
    team = {a: i % org.teams for i, a in enumerate(accounts)}
    pairs = [(BEDROCK, a) for a in accounts] + [(AMAZON_Q, a) for i, a in enumerate(accounts) if i % 4 == 1]
    pairs.sort()
    level = dict(zip(accounts, rng.lognormal(np.log(30.0), 1.0, len(accounts)), strict=True))  # USD a weekday
    q_seats = dict(zip(accounts, rng.integers(5, 60, len(accounts)), strict=True))
    shares = np.array([u[3] for u in BEDROCK_USAGE])
    estimated_from = min(datetime.now(UTC).date() - timedelta(days=2), datetime.now(UTC).date().replace(day=1))
    usage_keys = sorted(
        {(BEDROCK, u[0]) for u in BEDROCK_USAGE} | {(s, Q_USAGE_TYPE) for s, _ in pairs if s == AMAZON_Q}
    )
    totals: list[list[str]] = []  # per day: the (service, usage type) groups of the totals answer
    usage_groups: dict[tuple[str, str], list[list[str]]] = {key: [] for key in usage_keys}  # per key, per day
    for n, day in enumerate(org.days):
        weekday = (1.0 if day.weekday() < 5 else 0.3) * (1.0 + 0.5 * n / len(org.days))
        day_groups: dict[tuple[str, str], list[str]] = {key: [] for key in usage_keys}
        day_costs = dict.fromkeys(usage_keys, 0)
        for service, account in pairs:  # sorted: each usage type's groups come in account order
            if service == BEDROCK:
                units = np.maximum(1, level[account] * shares * weekday * rng.lognormal(0, 0.3, len(shares)) * 1e10)
                for (usage, unit, whose, _), u in zip(BEDROCK_USAGE, units.astype(np.int64), strict=True):
                    tag = _tag(whose, team[account], org.teams)
                    day_groups[(BEDROCK, usage)].append(_ce_group(account, tag, int(u), f"{int(u) // 700 + 1}", unit))
                    day_costs[(BEDROCK, usage)] += int(u)
            else:
                month_days = calendar.monthrange(day.year, day.month)[1]
                cost = int(q_seats[account]) * 19 * 10**10 // month_days
                quantity = f"{Decimal(int(q_seats[account])) / month_days:.10f}"
                day_groups[(AMAZON_Q, Q_USAGE_TYPE)].append(_ce_group(account, f"{TAG_KEY}$", cost, quantity, "User"))
                day_costs[(AMAZON_Q, Q_USAGE_TYPE)] += cost
        for key in usage_keys:
            usage_groups[key].append(day_groups[key])
        totals.append(
            [
                f'{{"Keys":["{service}","{usage}"],"Metrics":{{"UnblendedCost":{{"Amount":"{_amount(cost)}",'
                '"Unit":"USD"}}}'
                for (service, usage), cost in day_costs.items()
                if day_groups[(service, usage)]
            ]
        )
        org.expected_usd[("aws", day)] = Decimal(sum(day_costs.values())).scaleb(-10)
        org.lines["aws"] = org.lines.get("aws", 0) + sum(len(g) for g in day_groups.values())
    days = org.days
    services = f"{BEDROCK},{AMAZON_Q}"
    names = {
        a: f'{{"Value":"{a}","Attributes":{{"description":"scale-account-{i:03d}"}}}}' for i, a in enumerate(accounts)
    }
    in_usage = {key: sorted({a for s, a in pairs if s == key[0]}) for key in usage_keys}
    for first_day in (0, len(days) - 1):  # the year's requests, and the next morning's one-day ones
        start = days[first_day]
        values = ",".join(f'{{"Value":"{s}","Attributes":{{}}}}' for s in CE_SERVICES)
        org.pages[("GetDimensionValues", str(start), "SERVICE", "", "", "")] = (
            f'{{"DimensionValues":[{values}],"ReturnSize":{len(CE_SERVICES)},"TotalSize":{len(CE_SERVICES)}}}'
        ).encode()
        assert len(accounts) <= CE_PAGE, "one page of linked accounts"
        org.pages[("GetDimensionValues", str(start), "LINKED_ACCOUNT", services, "", "")] = (
            f'{{"DimensionValues":[{",".join(names.values())}],"ReturnSize":{len(accounts)},'
            f'"TotalSize":{len(accounts)}}}'
        ).encode()
        by_usage = '[{"Type":"DIMENSION","Key":"SERVICE"},{"Type":"DIMENSION","Key":"USAGE_TYPE"}]'
        key = ("GetCostAndUsage", str(start), "SERVICE,USAGE_TYPE", services, "")
        calls = _ce_pages(org.pages, key, days[first_day:], totals[first_day:], by_usage, "[]", estimated_from)
        by_line = f'[{{"Type":"DIMENSION","Key":"LINKED_ACCOUNT"}},{{"Type":"TAG","Key":"{TAG_KEY}"}}]'
        for service, usage in usage_keys:
            key = ("GetCostAndUsage", str(start), "LINKED_ACCOUNT,TAG", service, usage)
            attributes = f"[{','.join(names[a] for a in in_usage[(service, usage)])}]"
            groups = usage_groups[(service, usage)][first_day:]
            calls += _ce_pages(org.pages, key, days[first_day:], groups, by_line, attributes, estimated_from)
        if first_day == 0:
            org.ce_minimum = calls
    org.mapping += [
        f"aws,account_id,{a},team-{i % org.teams:03d},CC-{i % org.teams:03d},Product {i % 50},,"
        for i, a in enumerate(accounts[: max(1, round(len(accounts) * 0.98))])
    ]
    org.mapping += [  # every tenth team's tag has no rule: its lines go by their account's rule
        f"aws,tag,tag-{t:03d},team-{t:03d},CC-{t:03d},,," for t in range(org.teams) if t % 10 != 9
    ]


def _tag(whose: str, team: int, teams: int) -> str:
    if whose == "none":
        return f"{TAG_KEY}$"
    return f"{TAG_KEY}$tag-{(team if whose == 'own' else (team + 1) % teams):03d}"


def _amount(units: int) -> str:
    """10^-10 USD units as Cost Explorer writes amounts: a decimal string with 10 places."""
    return f"{units // 10**10}.{units % 10**10:010d}"


def _ce_group(account: str, tag: str, cost: int, quantity: str, unit: str) -> str:
    return (
        f'{{"Keys":["{account}","{tag}"],"Metrics":{{"UnblendedCost":{{"Amount":"{_amount(cost)}","Unit":"USD"}},'
        f'"UsageQuantity":{{"Amount":"{quantity}","Unit":"{unit}"}}}}}}'
    )


def _ce_pages(
    pages: dict[tuple[str, ...], bytes],
    key: tuple[str, ...],
    days: list[date],
    groups: list[list[str]],
    group_definitions: str,
    attributes: str,
    estimated_from: date,
) -> int:
    """One request's pages: up to CE_PAGE slots (a group, or a day without groups) each; a day split between
    two pages is on both, with its groups divided. Returns the number of pages."""
    slots: list[tuple[date, str | None]] = [
        (day, group) for day, day_groups in zip(days, groups, strict=True) for group in (day_groups or [None])
    ]
    chunks = [slots[i : i + CE_PAGE] for i in range(0, len(slots), CE_PAGE)]
    for n, chunk in enumerate(chunks):
        results = [
            f'{{"TimePeriod":{{"Start":"{day}","End":"{day + timedelta(days=1)}"}},"Total":{{}},'
            f'"Groups":[{",".join(g for g in day_groups if g)}],"Estimated":{json.dumps(day >= estimated_from)}}}'
            for day, day_groups in _by_day(chunk)
        ]
        token = "" if n + 1 == len(chunks) else f',"NextPageToken":"{_token(key, n + 1)}"'
        pages[(*key, "" if n == 0 else _token(key, n))] = (
            f'{{"GroupDefinitions":{group_definitions},"ResultsByTime":[{",".join(results)}],'
            f'"DimensionValueAttributes":{attributes}{token}}}'
        ).encode()
    return len(chunks)


def _by_day(slots: Iterable[tuple[date, str | None]]) -> list[tuple[date, list[str | None]]]:
    days: dict[date, list[str | None]] = {}
    for day, group in slots:
        days.setdefault(day, []).append(group)
    return list(days.items())


def _token(key: tuple[str, ...], page: int) -> str:
    return base64.urlsafe_b64encode(f"{'|'.join(key)}|{page}".encode()).decode()


def ce_request_key(operation: str, body: dict[str, Any]) -> tuple[str, ...]:
    """What a Cost Explorer request is answered by: operation, first day, the Dimension or GroupBy keys, the
    SERVICE and USAGE_TYPE filters, the token."""
    flt = body.get("Filter") or {}
    dimensions = {
        part["Dimensions"]["Key"]: ",".join(part["Dimensions"]["Values"])
        for part in flt.get("And", [flt])
        if "Dimensions" in part
    }
    shape = body.get("Dimension") or ",".join(
        g["Key"] if g["Type"] == "DIMENSION" else "TAG" for g in body.get("GroupBy") or []
    )
    return (
        operation,
        str((body.get("TimePeriod") or {}).get("Start")),
        str(shape),
        dimensions.get("SERVICE", ""),
        dimensions.get("USAGE_TYPE", ""),
        str(body.get("NextPageToken") or ""),
    )


def ce_authorised(authorization: str | None) -> bool:
    """A SigV4 header signed with the benchmark's key for us-east-1 and the `ce` service."""
    header = authorization or ""
    return (
        header.startswith("AWS4-HMAC-SHA256 ")
        and f"Credential={AWS_KEY_ID}/" in header
        and ("/us-east-1/ce/aws4_request" in header)
    )


def env(url: str) -> dict[str, str]:
    """The two sources' settings: the server as their endpoint, dummy AWS keys, no metadata probing."""
    return {
        "GITHUB_TOKEN": GITHUB_TOKEN,
        "GITHUB_ORG": GITHUB_ORG,
        "GITHUB_API_URL": url,
        "AISPEND_AWS_ENABLED": "true",
        "AWS_ENDPOINT_URL_COST_EXPLORER": url,
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }
