"""AWS Cost Explorer's JSON 1.1 wire format over a synthetic AWS Organization's bill.

It serves what boto3's `ce` client sends (checked against botocore's service model ce/2017-10-25):
`POST /` with `X-Amz-Target: AWSInsightsIndexService.GetCostAndUsage` or `.GetDimensionValues`,
`Content-Type: application/x-amz-json-1.1`, a SigV4 `Authorization` header whose credential scope names
the simulator's access key id, region us-east-1 and service `ce`. It evaluates Filter expressions (And,
Or, Not, Dimensions, Tags, with Cost Explorer's rules: Dimensions match only EQUALS/CASE_SENSITIVE; a
SERVICE filter must apply to the whole request), groups by up to two DIMENSION/TAG keys (`key$value` for
tags), answers every day of [Start, End) (End exclusive) with amounts as decimal strings, and pages with
NextPageToken, a day split across pages appearing on both. Errors are JSON 1.1 `{"__type", "message"}`:
ValidationException for bad input, ThrottlingException (400) on `fail_next`.

The bill has AI services (Amazon Bedrock, Amazon Q, two "(Amazon Bedrock Edition)" Marketplace models)
and non-AI ones (EC2, S3, SageMaker) in three linked accounts, with and without the `team` tag.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from aispend_pipeline.core.days import days_between
from aispend_pipeline.simulators.base import HttpSimulator
from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.simulators.paging import utc_today
from aispend_pipeline.simulators.server import HttpError, Reply, Request, Route

ACCESS_KEY_ID = "AKIASIMULATORCE00001"
SECRET_ACCESS_KEY = "sim-ce-secret-access-key-0000000000000000"
TARGET_PREFIX = "AWSInsightsIndexService."
CONTENT_TYPE = "application/x-amz-json-1.1"
TAG_KEY = "team"
DEFAULT_PAGE_SLOTS = 1000  # groups (or empty days) per page
AMOUNT = Decimal("1E-10")  # Cost Explorer writes amounts with 10 decimal places
BEDROCK, Q = "Amazon Bedrock", "Amazon Q"
SONNET_45 = "Claude Sonnet 4.5 (Amazon Bedrock Edition)"
HAIKU_3 = "Claude 3 Haiku (Amazon Bedrock Edition)"
AI_SERVICES = (BEDROCK, Q, SONNET_45, HAIKU_3)
Q_SEAT_USD = Decimal(19)

# usage key -> (service, usage type, USD per 1M tokens or None, UsageQuantity unit)
USAGE: dict[str, tuple[str, str, float | None, str]] = {
    "sonnet-in": (BEDROCK, "USE1-Claude3Sonnet-input-tokens", 3.0, "Count"),
    "sonnet-out": (BEDROCK, "USE1-Claude3Sonnet-output-tokens", 15.0, "Count"),
    "nova-in": (BEDROCK, "USW2-NovaPro-input-tokens", 0.8, "Count"),
    "nova-out": (BEDROCK, "USW2-NovaPro-output-tokens", 3.2, "Count"),
    "nova-cache": (BEDROCK, "USW2-NovaPro-cache-read-input-tokens", 0.2, "Count"),
    "titan-embed": (BEDROCK, "USE1-TitanEmbeddingsV2-Text-input-tokens", 0.02, "Count"),
    "guardrail": (BEDROCK, "USE1-Guardrail-ContentPolicyTextUnits", None, "Units"),
    "sonnet45-in": (SONNET_45, "USE1-MP:USE1_InputTokenCount-Units", 3.0, "Units"),
    "sonnet45-out": (SONNET_45, "USE1-MP:USE1_OutputTokenCount-Units", 15.0, "Units"),
    "haiku-in": (HAIKU_3, "USW2-MP:USW2_InputTokenCount-Units", 0.25, "Units"),
    "haiku-out": (HAIKU_3, "USW2-MP:USW2_OutputTokenCount-Units", 1.25, "Units"),
    "sagemaker": ("Amazon SageMaker", "USE1-Host:ml.g5.xlarge", None, "Hrs"),
    "ec2": ("Amazon Elastic Compute Cloud - Compute", "USE1-BoxUsage:m5.large", None, "Hrs"),
    "s3": ("Amazon Simple Storage Service", "USE1-TimedStorage-ByteHrs", None, "GB-Mo"),
}
NON_AI = ("sagemaker", "ec2", "s3")
Q_USAGE_TYPE = "Global-QDeveloperPro-User"
# account -> (name, USD of AI on a weekday, chance a line has usage on a day, usage shares, team tag shares,
#             Amazon Q Developer Pro seats). Non-AI shares are relative to the AI ones (they are not budget).
ACCOUNTS: dict[str, tuple[str, float, float, dict[str, float], dict[str | None, float], int]] = {
    "210987654321": (
        "search-prod", 55.0, 1.0,
        {"sonnet-in": 0.25, "sonnet-out": 0.35, "titan-embed": 0.15, "haiku-in": 0.1, "haiku-out": 0.15,
         "ec2": 2.0, "s3": 0.5},
        {"search": 0.8, None: 0.2}, 12,
    ),
    "345678901234": (
        "ml-research", 40.0, 0.9,
        {"sonnet45-in": 0.3, "sonnet45-out": 0.5, "nova-in": 0.08, "nova-out": 0.1, "nova-cache": 0.02,
         "sagemaker": 0.6, "ec2": 1.0},
        {"research": 0.6, "data-platform": 0.2, None: 0.2}, 0,
    ),
    "456789012345": (
        "shared-platform", 20.0, 0.95,
        {"sonnet-in": 0.3, "sonnet-out": 0.4, "guardrail": 0.1, "sonnet45-out": 0.2, "s3": 1.0},
        {"support": 0.5, None: 0.5}, 7,
    ),
}  # fmt: skip

METRICS = (
    "AmortizedCost",
    "BlendedCost",
    "NetAmortizedCost",
    "NetUnblendedCost",
    "NormalizedUsageAmount",
    "UnblendedCost",
    "UsageQuantity",
)
GROUP_DIMENSIONS = (
    "AZ",
    "INSTANCE_TYPE",
    "LEGAL_ENTITY_NAME",
    "INVOICING_ENTITY",
    "LINKED_ACCOUNT",
    "OPERATION",
    "PLATFORM",
    "PURCHASE_TYPE",
    "SERVICE",
    "TENANCY",
    "RECORD_TYPE",
    "USAGE_TYPE",
)
SERVED_DIMENSIONS = ("SERVICE", "LINKED_ACCOUNT", "USAGE_TYPE", "REGION", "RECORD_TYPE")
REGIONS = {"USE1": "us-east-1", "USW2": "us-west-2", "Global": "global"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CREDENTIAL = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ")


class CostExplorerFault(Exception):
    """A Cost Explorer error: its `__type` and message (JSON 1.1 error shape), answered with HTTP 400."""

    def __init__(self, kind: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status


def _invalid(message: str) -> CostExplorerFault:
    return CostExplorerFault("ValidationException", message)


def error_json(kind: str, message: str) -> dict[str, str]:
    return {"__type": kind, "message": message}


@dataclass(frozen=True)
class CostLine:
    """One line of the bill: a day, an account, a service, a usage type and a tag value."""

    day: date
    account_id: str
    service: str
    usage_type: str
    tags: tuple[tuple[str, str], ...]
    cost: Decimal  # exactly as Cost Explorer writes it (10 decimal places)
    quantity: Decimal
    unit: str

    def value(self, dimension: str) -> str:
        if dimension == "SERVICE":
            return self.service
        if dimension == "LINKED_ACCOUNT":
            return self.account_id
        if dimension == "USAGE_TYPE":
            return self.usage_type
        if dimension == "REGION":
            return REGIONS.get(self.usage_type.split("-", 1)[0], "")
        return "Usage"  # RECORD_TYPE

    def tag(self, key: str) -> str | None:
        return next((v for k, v in self.tags if k == key), None)


AccountProfile = tuple[str, float, float, dict[str, float], dict[str | None, float], int]


def account_profiles(count: int = len(ACCOUNTS)) -> dict[str, AccountProfile]:
    """`count` linked accounts: the three above, then copies of them with their own ids, names and amounts."""
    profiles = list(ACCOUNTS.items())
    accounts = {}
    for i in range(count):
        account, profile = profiles[i % len(profiles)]
        copy = i // len(profiles)
        if copy:
            account, profile = f"{int(account) + copy:012d}", (f"{profile[0]}-{copy}", *profile[1:])
        accounts[account] = profile
    return accounts


def bill_lines(org: SyntheticOrg, day: date, accounts: Mapping[str, AccountProfile] = ACCOUNTS) -> list[CostLine]:
    """Every line of the organisation's bill on `day`, AI and non-AI."""
    lines = []
    for account, (_, budget, activity, usage, tags, seats) in accounts.items():
        ai_shares = sum(share for key, share in usage.items() if key not in NON_AI)
        for key, share in usage.items():
            service, usage_type, price, unit = USAGE[key]
            for tag, tag_share in tags.items():
                base = budget * share / ai_shares * tag_share
                amount = org._amount("aws", day, f"{account}|{key}|{tag}", base, activity)
                if amount is None:
                    continue
                cost = (amount / 3 if service in (SONNET_45, HAIKU_3) else amount).quantize(AMOUNT)
                tokens = Decimal(round(cost * 1_000_000 / Decimal(str(price)))) if price else None
                quantity = tokens if tokens is not None else (cost / 2).quantize(AMOUNT)
                labels = ((TAG_KEY, tag), ("env", "prod")) if tag else (("env", "prod"),)
                lines.append(CostLine(day, account, service, usage_type, labels, cost, quantity, unit))
        if seats:  # Amazon Q Developer Pro: seats x $19 a month, prorated per day; subscriptions carry no tags
            month_days = calendar.monthrange(day.year, day.month)[1]
            cost = (Q_SEAT_USD * seats / month_days).quantize(AMOUNT)
            lines.append(CostLine(day, account, Q, Q_USAGE_TYPE, (), cost, Decimal(seats) / month_days, "User"))
    return lines


class CostExplorerSimulator(HttpSimulator):
    """Cost Explorer on 127.0.0.1; `requests` records each operation and body it answered."""

    source = "aws"

    def __init__(
        self,
        org: SyntheticOrg,
        *,
        max_page_size: int | None = None,
        linked_accounts: int = len(ACCOUNTS),
        **server_options: Any,
    ) -> None:
        super().__init__(org, max_page_size=max_page_size, **server_options)
        self.accounts = account_profiles(linked_accounts)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.dropped_days: set[date] = set()  # days a faulty answer leaves out of ResultsByTime
        self.repeat_group_across_pages = False  # a page that repeats the previous page's last group
        self.amount_overrides: dict[str, str] = {}  # usage type -> UnblendedCost Amount served for it
        self.usage_type_drift = Decimal(0)  # added to one group of each USAGE_TYPE-grouped answer (a restatement)
        self._lock = threading.Lock()
        self._bills: dict[date, list[CostLine]] = {}

    def bill(self, day: date) -> list[CostLine]:
        """The day's bill (computed once: every request reads it again)."""
        with self._lock:
            if day not in self._bills:
                self._bills[day] = bill_lines(self.org, day, self.accounts)
            return self._bills[day]

    @property
    def routes(self) -> Mapping[str, Route]:
        return {"POST /": self.handle}

    @property
    def env(self) -> dict[str, str]:
        return {
            "AISPEND_AWS_ENABLED": "true",
            "AWS_ENDPOINT_URL_COST_EXPLORER": self.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def error_body(self, status: int, message: str) -> dict[str, str]:
        if status in (400, 429):
            return error_json("ThrottlingException", "Rate exceeded")
        return error_json("InternalServerError" if status < 503 else "ServiceUnavailable", message)

    def fail_next(
        self, status: int, headers: Mapping[str, str] | None = None, body: Any = None, times: int = 1
    ) -> None:
        """Answer the next `times` requests with `status` (default: ThrottlingException for a 400)."""
        super().fail_next(status, {"Content-Type": CONTENT_TYPE, **(headers or {})}, body, times)

    def operation_count(self, operation: str) -> int:
        with self._lock:
            return Counter(op for op, _ in self.requests)[operation]

    # --- what the pipeline must report

    def expected_total_usd(self, day: date, services: Iterable[str] = AI_SERVICES) -> Decimal:
        wanted = set(services)
        return sum((line.cost for line in self.bill(day) if line.service in wanted), Decimal(0))

    def expected_pairs(self, start: date, end: date, beside: str = "LINKED_ACCOUNT") -> set[tuple[str, str]]:
        """(service, account) or (service, usage type) pairs with AI spend in [start, end)."""
        return {
            (line.service, line.value(beside))
            for day in days_between(start, end)
            for line in self.bill(day)
            if line.service in AI_SERVICES
        }

    def demo_mapping_rows(self) -> list[dict[str, str]]:
        def rule(dimension: str, value: str, team: str, centre: str, product: str) -> dict[str, str]:
            return {"provider": "aws", "dimension": dimension, "value": value, "team": team} | {
                "cost_centre": centre,
                "product": product,
            }

        return [
            rule("tag", "search", "search", "CC-210", "Search"),
            rule("tag", "support", "support", "CC-220", "Support Assistant"),
            rule("tag", "research", "research", "CC-500", "Research"),
            rule("tag", "data-platform", "data-platform", "CC-300", "Data Platform"),
            rule("account_id", "210987654321", "search", "CC-210", "Search"),
            rule("account_id", "345678901234", "research", "CC-500", "Research"),
        ]

    # --- the wire format

    def handle(self, request: Request) -> Reply:
        try:
            operation = self._operation(request)
            self._check_signature(request)
            body = request.json()
            if not isinstance(body, dict):
                raise CostExplorerFault("SerializationException", "Start of structure or map found where not expected")
            with self._lock:
                self.requests.append((operation, body))
            serve = self.get_cost_and_usage if operation == "GetCostAndUsage" else self.get_dimension_values
            answer = serve(body)
            status = 200
        except CostExplorerFault as fault:
            answer, status = error_json(fault.kind, fault.message), fault.status
        except HttpError as exc:
            answer, status = error_json("SerializationException", exc.message), 400
        return Reply(answer, status, {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": _request_id(request)})

    def _operation(self, request: Request) -> str:
        if (request.headers.get("Content-Type") or "").split(";")[0].strip() != CONTENT_TYPE:
            raise CostExplorerFault("UnknownOperationException", f"Content-Type must be {CONTENT_TYPE}")
        target = request.headers.get("X-Amz-Target") or ""
        operation = target.removeprefix(TARGET_PREFIX)
        if not target.startswith(TARGET_PREFIX) or operation not in ("GetCostAndUsage", "GetDimensionValues"):
            raise CostExplorerFault("UnknownOperationException", f"unknown operation {target!r}")
        return operation

    def _check_signature(self, request: Request) -> None:
        authorization = request.headers.get("Authorization")
        if not authorization:
            raise CostExplorerFault("MissingAuthenticationTokenException", "Missing Authentication Token")
        match = _CREDENTIAL.match(authorization)
        if not match or "Signature=" not in authorization or not request.headers.get("X-Amz-Date"):
            raise CostExplorerFault("IncompleteSignatureException", "Authorization header is not a SigV4 signature")
        key_id, _, region, service = match.groups()
        if key_id != ACCESS_KEY_ID:
            message = "The security token included in the request is invalid."
            raise CostExplorerFault("UnrecognizedClientException", message)
        if (region, service) != ("us-east-1", "ce"):
            message = f"Credential should be scoped to us-east-1/ce, not {region}/{service}"
            raise CostExplorerFault("InvalidSignatureException", message)

    # --- GetCostAndUsage

    def get_cost_and_usage(self, body: dict[str, Any]) -> dict[str, Any]:
        start, end = _period(body)
        if body.get("Granularity") != "DAILY":
            raise _invalid("the simulator serves Granularity DAILY only")
        metrics = body.get("Metrics")
        if not isinstance(metrics, list) or not metrics or any(m not in METRICS for m in metrics):
            raise _invalid(f"Metrics must be a non-empty list of {', '.join(METRICS)}")
        group_by = _group_by(body.get("GroupBy"))
        flt = body.get("Filter")
        if flt is not None:
            _check_filter(flt)
        lines = [
            line for day in days_between(start, end) for line in self.bill(day) if flt is None or _matches(flt, line)
        ]
        slots = self._slots(start, end, lines, group_by, metrics)
        if self.usage_type_drift and {"Type": "DIMENSION", "Key": "USAGE_TYPE"} in group_by:
            group = next(g for _, g in slots if g is not None)
            cost = group["Metrics"]["UnblendedCost"]
            cost["Amount"] = _text(Decimal(cost["Amount"]) + self.usage_type_drift)
        offset = _offset(body, start, end) if body.get("NextPageToken") else 0
        size = self.max_page_size or DEFAULT_PAGE_SLOTS
        page = slots[offset : offset + size]
        if self.repeat_group_across_pages and offset and slots[offset - 1][1] is not None:
            page = [slots[offset - 1], *page]
        estimated_from = min(utc_today() - timedelta(days=2), utc_today().replace(day=1))
        results: list[dict[str, Any]] = []
        for day, group in page:
            if day in self.dropped_days:
                continue
            if not results or results[-1]["TimePeriod"]["Start"] != day.isoformat():
                results.append(
                    {
                        "TimePeriod": {"Start": day.isoformat(), "End": (day + timedelta(days=1)).isoformat()},
                        "Total": {},
                        "Groups": [],
                        "Estimated": day >= estimated_from,
                    }
                )
            if group is not None and group_by:
                results[-1]["Groups"].append(group)
            elif group is not None:
                results[-1]["Total"] = group["Metrics"]
        answer: dict[str, Any] = {"ResultsByTime": results, "DimensionValueAttributes": []}
        if group_by:
            answer["GroupDefinitions"] = group_by
        if any(g == {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"} for g in group_by):
            answer["DimensionValueAttributes"] = [
                {"Value": account, "Attributes": {"description": self.accounts[account][0]}}
                for account in sorted({line.account_id for line in lines})
            ]
        if offset + size < len(slots):
            answer["NextPageToken"] = _token(body, offset + size)
        return answer

    def _slots(
        self,
        start: date,
        end: date,
        lines: list[CostLine],
        group_by: list[dict[str, str]],
        metrics: list[str],
    ) -> list[tuple[date, dict[str, Any] | None]]:
        """(day, group) in answer order; a day without groups takes one slot with no group."""
        by_day: dict[date, dict[tuple[str, ...], list[CostLine]]] = {day: {} for day in days_between(start, end)}
        for line in lines:
            keys = tuple(_group_key(g, line) for g in group_by)
            by_day[line.day].setdefault(keys, []).append(line)
        slots: list[tuple[date, dict[str, Any] | None]] = []
        for day, groups in by_day.items():
            if not groups:
                slots.append((day, None))
            for keys in sorted(groups):
                slots.append((day, {"Keys": list(keys), "Metrics": self._metrics(groups[keys], metrics)}))
        return slots

    def _metrics(self, lines: list[CostLine], metrics: list[str]) -> dict[str, dict[str, str]]:
        cost = sum((line.cost for line in lines), Decimal(0))
        quantity = sum((line.quantity for line in lines), Decimal(0))
        units = {line.unit for line in lines}
        unit = units.pop() if len(units) == 1 else "N/A"  # Cost Explorer mixes units into N/A
        overrides = [self.amount_overrides[x.usage_type] for x in lines if x.usage_type in self.amount_overrides]
        amount = overrides[0] if overrides else _text(cost)
        values = {}
        for metric in metrics:
            if metric in ("UsageQuantity", "NormalizedUsageAmount"):
                values[metric] = {"Amount": _text(quantity), "Unit": unit}
            else:
                values[metric] = {"Amount": amount, "Unit": "USD"}
        return values

    # --- GetDimensionValues

    def get_dimension_values(self, body: dict[str, Any]) -> dict[str, Any]:
        start, end = _period(body)
        dimension = body.get("Dimension")
        if dimension not in SERVED_DIMENSIONS:
            raise _invalid(f"the simulator does not serve Dimension {dimension!r}")
        flt = body.get("Filter")
        if flt is not None:
            _check_filter(flt)
        search = str(body.get("SearchString") or "").lower()
        values = sorted(
            {
                line.value(dimension)
                for day in days_between(start, end)
                for line in self.bill(day)
                if (flt is None or _matches(flt, line)) and search in line.value(dimension).lower()
            }
        )
        offset = _offset(body, start, end) if body.get("NextPageToken") else 0
        size = self.max_page_size or DEFAULT_PAGE_SLOTS
        page = values[offset : offset + size]
        answer: dict[str, Any] = {
            "DimensionValues": [
                {
                    "Value": v,
                    "Attributes": {"description": self.accounts[v][0]} if dimension == "LINKED_ACCOUNT" else {},
                }
                for v in page
            ],
            "ReturnSize": len(page),
            "TotalSize": len(values),
        }
        if offset + size < len(values):
            answer["NextPageToken"] = _token(body, offset + size)
        return answer


# --- request checks


def _period(body: dict[str, Any]) -> tuple[date, date]:
    period = body.get("TimePeriod")
    if not isinstance(period, dict) or not all(_DATE.match(str(period.get(k) or "")) for k in ("Start", "End")):
        raise _invalid("TimePeriod needs Start and End as YYYY-MM-DD")
    try:
        start, end = date.fromisoformat(period["Start"]), date.fromisoformat(period["End"])
    except ValueError:
        raise _invalid(f"TimePeriod {period!r} is not a valid date range") from None
    if end <= start:
        raise _invalid("Start date (and hour) should be before end date (and hour)")
    if start > utc_today():
        raise _invalid("Start date must be equal to or no later than the current date")
    return start, end


def _group_by(raw: Any) -> list[dict[str, str]]:
    groups = raw or []
    if not isinstance(groups, list) or len(groups) > 2:
        raise _invalid("You can group by at most two dimensions, tags or cost categories")
    for group in groups:
        kind, key = (group or {}).get("Type"), (group or {}).get("Key")
        if kind == "DIMENSION" and key not in GROUP_DIMENSIONS:
            raise _invalid(f"Group Definition dimension {key!r} is not supported")
        if kind == "DIMENSION" and key not in SERVED_DIMENSIONS:
            raise _invalid(f"the simulator does not group by {key!r}")
        if kind not in ("DIMENSION", "TAG") or not key:
            raise _invalid(f"GroupBy entry {group!r} needs Type DIMENSION or TAG and a Key")
    if len({(g["Type"], g["Key"]) for g in groups}) != len(groups):
        raise _invalid("GroupBy has the same key twice")
    return [{"Type": g["Type"], "Key": g["Key"]} for g in groups]


def _group_key(group: dict[str, str], line: CostLine) -> str:
    if group["Type"] == "TAG":
        return f"{group['Key']}${line.tag(group['Key']) or ''}"
    return line.value(group["Key"])


FILTER_KINDS = ("And", "Or", "Not", "Dimensions", "Tags", "CostCategories", "ProductAttributes")


def _check_filter(expr: Any) -> None:
    """Cost Explorer's Expression rules, and where a SERVICE filter may stand."""
    _check_expression(expr)
    if _mentions_service(expr) and not _constrains_service(expr):
        raise CostExplorerFault(
            "ValidationException",
            "A SERVICE filter must apply to the whole request: use And, or put it in every Or branch",
        )


def _check_expression(expr: Any) -> None:
    if not isinstance(expr, dict) or not expr:
        raise _invalid("Expression must not be empty")
    kinds = [k for k in expr if k in FILTER_KINDS]
    if len(kinds) != 1 or len(expr) != 1:
        raise _invalid("Expression must have exactly one of And, Or, Not, Dimensions, Tags")
    kind, value = kinds[0], expr[kinds[0]]
    if kind in ("And", "Or"):
        if not isinstance(value, list) or len(value) < 2:
            raise _invalid(f"{kind} needs at least two expressions")
        for child in value:
            _check_expression(child)
    elif kind == "Not":
        _check_expression(value)
        if _mentions_service(value):
            raise _invalid("A SERVICE filter inside Not is not supported")
    elif kind == "Dimensions":
        key, values = value.get("Key"), value.get("Values")
        if key not in SERVED_DIMENSIONS or not isinstance(values, list) or not values:
            raise _invalid(f"Dimensions filter {value!r} needs a Key and Values")
        options = value.get("MatchOptions") or []
        if any(o not in ("EQUALS", "CASE_SENSITIVE") for o in options):
            raise CostExplorerFault(
                "ValidationException", "MatchOptions for Dimensions can only be EQUALS and CASE_SENSITIVE"
            )
    elif kind == "Tags":
        options = value.get("MatchOptions") or []
        if not value.get("Key") or any(o not in ("EQUALS", "ABSENT", "CASE_SENSITIVE") for o in options):
            raise _invalid(f"Tags filter {value!r} is not valid")
    else:
        raise _invalid(f"the simulator does not filter by {kind}")


def _mentions_service(expr: dict[str, Any]) -> bool:
    if "Dimensions" in expr:
        return expr["Dimensions"].get("Key") == "SERVICE"
    children = expr.get("And") or expr.get("Or") or ([expr["Not"]] if "Not" in expr else [])
    return any(_mentions_service(child) for child in children)


def _constrains_service(expr: dict[str, Any]) -> bool:
    if "Dimensions" in expr:
        return expr["Dimensions"].get("Key") == "SERVICE"
    if "And" in expr:
        return any(_constrains_service(child) for child in expr["And"])
    if "Or" in expr:
        return all(_constrains_service(child) for child in expr["Or"])
    return False


def _matches(expr: dict[str, Any], line: CostLine) -> bool:
    if "And" in expr:
        return all(_matches(child, line) for child in expr["And"])
    if "Or" in expr:
        return any(_matches(child, line) for child in expr["Or"])
    if "Not" in expr:
        return not _matches(expr["Not"], line)
    if "Dimensions" in expr:
        return line.value(expr["Dimensions"]["Key"]) in expr["Dimensions"]["Values"]
    tags = expr["Tags"]
    value = line.tag(tags["Key"])
    if "ABSENT" in (tags.get("MatchOptions") or []):
        return not value
    return value in (tags.get("Values") or [])


# --- pages


def _fingerprint(body: dict[str, Any]) -> str:
    rest = {k: v for k, v in body.items() if k != "NextPageToken"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _token(body: dict[str, Any], offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_fingerprint(body)}:{offset}".encode()).decode()


def _offset(body: dict[str, Any], start: date, end: date) -> int:
    try:
        fingerprint, _, offset = base64.urlsafe_b64decode(str(body["NextPageToken"]).encode()).decode().partition(":")
        if fingerprint == _fingerprint(body):
            return int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise CostExplorerFault("InvalidNextTokenException", "The token is not valid for this request")


def _text(amount: Decimal) -> str:
    return format(amount.quantize(AMOUNT), "f")


def _request_id(request: Request) -> str:
    return hashlib.md5(request.body).hexdigest()  # an id, not a signature
