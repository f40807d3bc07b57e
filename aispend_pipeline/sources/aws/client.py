"""AWS Cost Explorer through boto3's `ce` client: the AI services' daily cost per account, usage type and tag.

Cost Explorer groups by at most two keys per request, and mapping needs four (service, linked account,
usage type, team tag). Two of them are fixed by filters instead, with no estimate anywhere:

1. `GetDimensionValues(SERVICE)` over the range: the Marketplace model services, "... (Amazon Bedrock
   Edition)", which a filter cannot match by suffix (Dimensions accept only EQUALS).
2. One `GetCostAndUsage` over the whole range, filtered to the AI services and grouped by SERVICE and
   LINKED_ACCOUNT: which (service, account) pairs have spend, and their exact daily totals.
3. One `GetCostAndUsage` per such pair (filtered to that service and account), grouped by USAGE_TYPE and
   the cost-allocation tag: the lines. They must add up to the pair's totals of step 2, day by day.

Each request covers the whole range (DAILY granularity, End exclusive) and follows NextPageToken; a day
repeated across pages is merged, never counted twice, and every requested day must be answered.
Throttling and 5xx are retried by botocore's standard retry mode (bounded attempts).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from aispend_pipeline.core.days import bucket_day, merge_daily_buckets, require_every_day, utc_midnight
from aispend_pipeline.core.money import fit_money, parse_money
from aispend_pipeline.core.secrets import safe_url
from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError

SOURCE = "aws"
REGION = "us-east-1"  # Cost Explorer's one endpoint
ENABLED_SETTING = "AISPEND_AWS_ENABLED"
ENDPOINT_SETTING = "AWS_ENDPOINT_URL_COST_EXPLORER"
DEFAULT_TAG_KEY = "team"
DEFAULT_SERVICES = ("Amazon Bedrock", "Amazon Q")
MARKETPLACE_SUFFIX = "(Amazon Bedrock Edition)"
COST, USAGE = "UnblendedCost", "UsageQuantity"
THROTTLING_CODES = frozenset(
    {"LimitExceededException", "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
AUTH_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationTokenException",
    }
)
CREDENTIALS_HINT = (
    "credentials come from boto3's default chain (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "SSO, an assumed role); the principal needs ce:GetCostAndUsage and ce:GetDimensionValues"
)


@dataclass(frozen=True)
class AwsCostLine:
    usage_date: date
    service: str
    account_id: str
    account_name: str | None
    usage_type: str
    tag_key: str
    team_tag: str | None  # None: the line has no value for the tag
    cost_usd: Decimal
    quantity: Decimal | None
    unit: str | None
    estimated: bool


def parse_services(extra: str | None) -> tuple[str, ...]:
    """The named AI services plus `AISPEND_AWS_EXTRA_SERVICES` (comma-separated service names)."""
    added = [s.strip() for s in (extra or "").split(",") if s.strip()]
    return tuple(dict.fromkeys([*DEFAULT_SERVICES, *added]))


def is_ai_service(name: str, named: Iterable[str]) -> bool:
    return name in named or name.endswith(MARKETPLACE_SUFFIX)


def equals(key: str, values: Iterable[str]) -> dict[str, Any]:
    return {"Dimensions": {"Key": key, "Values": list(values)}}


def dimension(key: str) -> dict[str, str]:
    return {"Type": "DIMENSION", "Key": key}


@dataclass
class _Answer:
    """The merged days of one GetCostAndUsage request: groups per day, the Estimated flag, account names."""

    groups: dict[date, list[dict[str, Any]]]
    estimated: dict[date, bool]
    names: dict[str, str]


class CostExplorerClient:
    """Reads the AI services' daily costs; `request_count` counts every HTTP request sent (retries too)."""

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        tag_key: str = DEFAULT_TAG_KEY,
        services: tuple[str, ...] = DEFAULT_SERVICES,
        max_attempts: int = 5,
        timeout_seconds: float = 60.0,
    ) -> None:
        self.endpoint = endpoint or None
        self.tag_key = tag_key or DEFAULT_TAG_KEY
        self.services = services
        self.max_attempts = max_attempts
        self.timeout_seconds = timeout_seconds
        self.request_count = 0
        self._ce: Any = None

    # --- the pull

    def daily_costs(self, start: date, end: date) -> list[AwsCostLine]:
        """Every AI cost line of the UTC days [start, end)."""
        return [line for lines in self.daily_cost_batches(start, end) for line in lines]

    def daily_cost_batches(self, start: date, end: date) -> Iterator[list[AwsCostLine]]:
        """The lines of [start, end), one (service, account) pair at a time, each checked against its totals.

        A pair's lines are handed over as soon as they add up, so a pull of hundreds of accounts holds one
        pair's answer, not the whole range's lines."""
        from botocore import exceptions as boto_exceptions

        where = f"{start}..{end - timedelta(days=1)}"
        try:
            services = self.ai_services(start, end)
            by_pair = [dimension("SERVICE"), dimension("LINKED_ACCOUNT")]
            totals = self._answer(self._request(start, end, equals("SERVICE", services), by_pair, [COST]), start, end)
            by_pair_totals: dict[tuple[str, str], dict[tuple[date, str, str], Decimal]] = defaultdict(dict)
            for key, total in self._pair_totals(totals).items():
                by_pair_totals[key[1:]][key] = total
            for (service, account), pair_totals in sorted(by_pair_totals.items()):
                flt = {"And": [equals("SERVICE", [service]), equals("LINKED_ACCOUNT", [account])]}
                by_line = [dimension("USAGE_TYPE"), {"Type": "TAG", "Key": self.tag_key}]
                answer = self._answer(self._request(start, end, flt, by_line, [COST, USAGE]), start, end)
                lines = self._lines(answer, service, account, totals.names.get(account))
                self._reconcile(lines, pair_totals)
                yield lines
        except boto_exceptions.ClientError as exc:
            raise self._client_error(exc, where) from None
        except (boto_exceptions.NoCredentialsError, boto_exceptions.PartialCredentialsError):
            raise SourceAuthError(SOURCE, f"no AWS credentials found: {CREDENTIALS_HINT}", where) from None
        except (boto_exceptions.ConnectionError, boto_exceptions.HTTPClientError) as exc:
            endpoint = safe_url(self.endpoint) if self.endpoint else "ce.us-east-1.amazonaws.com"
            raise SourceUnavailableError(
                SOURCE,
                f"could not reach Cost Explorer at {endpoint} after {self.max_attempts} attempts "
                f"({type(exc).__name__}); check {ENDPOINT_SETTING} and the network, then re-run",
                where,
            ) from None

    def ai_services(self, start: date, end: date) -> list[str]:
        """The named services plus every "(Amazon Bedrock Edition)" service with data in the range."""
        found: list[str] = []
        request: dict[str, Any] = {"TimePeriod": _period(start, end), "Dimension": "SERVICE"}
        for page in self._pages("get_dimension_values", request):
            found.extend(str(v.get("Value") or "") for v in page.get("DimensionValues") or [])
        return list(dict.fromkeys([*self.services, *(s for s in found if is_ai_service(s, self.services))]))

    # --- requests

    @property
    def ce(self) -> Any:
        if self._ce is None:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"mode": "standard", "total_max_attempts": self.max_attempts},
                connect_timeout=self.timeout_seconds,
                read_timeout=self.timeout_seconds,
            )
            client = boto3.session.Session().client("ce", region_name=REGION, endpoint_url=self.endpoint, config=config)
            client.meta.events.register("before-send", self._count)
            self._ce = client
        return self._ce

    def _count(self, **_: Any) -> None:
        self.request_count += 1  # returns None: the request is sent as usual

    def _request(
        self, start: date, end: date, flt: dict[str, Any], group_by: list[dict[str, str]], metrics: list[str]
    ) -> Iterator[dict[str, Any]]:
        request = {
            "TimePeriod": _period(start, end),
            "Granularity": "DAILY",
            "Metrics": metrics,
            "Filter": flt,
            "GroupBy": group_by,
        }
        return self._pages("get_cost_and_usage", request)

    def _pages(self, operation: str, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every page of one request: the same request again with each NextPageToken."""
        token: str | None = None
        while True:
            page = getattr(self.ce, operation)(**request, **({"NextPageToken": token} if token else {}))
            yield page
            token = page.get("NextPageToken")
            if not token:
                return

    # --- answers

    def _answer(self, pages: Iterable[dict[str, Any]], start: date, end: date) -> _Answer:
        buckets: list[tuple[date, list[dict[str, Any]]]] = []
        estimated: dict[date, bool] = {}
        names: dict[str, str] = {}
        for page in pages:
            for result in page.get("ResultsByTime") or []:
                day = _result_day(result, start, end)
                buckets.append((day, list(result.get("Groups") or [])))
                estimated[day] = estimated.get(day, False) or bool(result.get("Estimated"))
            for attribute in page.get("DimensionValueAttributes") or []:
                description = (attribute.get("Attributes") or {}).get("description")
                if attribute.get("Value") and description:
                    names[str(attribute["Value"])] = str(description)
        groups = merge_daily_buckets(SOURCE, buckets, start, end)
        require_every_day(SOURCE, groups, start, end)
        for day, day_groups in groups.items():
            keys = [tuple(g.get("Keys") or ()) for g in day_groups]
            if len(keys) != len(set(keys)):
                repeated = next(k for k in keys if keys.count(k) > 1)
                raise SourcePayloadError(SOURCE, f"group {list(repeated)} came twice with different amounts", day)
        return _Answer(groups, estimated, names)

    def _pair_totals(self, answer: _Answer) -> dict[tuple[date, str, str], Decimal]:
        totals: dict[tuple[date, str, str], Decimal] = {}
        for day, groups in answer.groups.items():
            for group in groups:
                service, account = _keys(group, day)
                if not is_ai_service(service, self.services):
                    raise SourcePayloadError(SOURCE, f"the answer holds service {service!r}, which was not asked", day)
                totals[(day, service, account)] = _cost(group, day)
        return totals

    def _lines(self, answer: _Answer, service: str, account: str, name: str | None) -> list[AwsCostLine]:
        lines = []
        for day, groups in sorted(answer.groups.items()):
            for group in groups:
                usage_type, tag = _keys(group, day)
                key, _, value = tag.partition("$")
                if key != self.tag_key:
                    raise SourcePayloadError(SOURCE, f"group key {tag!r} is not the tag {self.tag_key!r}", day)
                quantity, unit = _usage(group, day)
                lines.append(
                    AwsCostLine(
                        usage_date=day,
                        service=service,
                        account_id=account,
                        account_name=name,
                        usage_type=usage_type,
                        tag_key=self.tag_key,
                        team_tag=value or None,
                        cost_usd=_cost(group, day),
                        quantity=quantity,
                        unit=unit,
                        estimated=answer.estimated.get(day, False),
                    )
                )
        return lines

    @staticmethod
    def _reconcile(lines: list[AwsCostLine], pair_totals: dict[tuple[date, str, str], Decimal]) -> None:
        """The usage-type lines of each service, account and day must add up to its total exactly."""
        summed: dict[tuple[date, str, str], Decimal] = defaultdict(Decimal)
        for line in lines:
            summed[(line.usage_date, line.service, line.account_id)] += line.cost_usd
        for key in sorted(set(summed) | set(pair_totals)):
            if summed.get(key, Decimal(0)) != pair_totals.get(key, Decimal(0)):
                day, service, account = key
                raise SourcePayloadError(
                    SOURCE,
                    f"{service} in account {account}: the usage-type lines total {summed.get(key, 0)} USD but the "
                    f"service total is {pair_totals.get(key, 0)} USD (Cost Explorer's data changed between "
                    "requests); stored days were kept: re-run later",
                    day,
                )

    # --- errors

    def _client_error(self, exc: Any, where: str) -> Exception:
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "")
        message = " ".join(str(error.get("Message") or "").split())[:200]
        status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        if code in THROTTLING_CODES or status >= 500:
            return SourceUnavailableError(
                SOURCE,
                f"Cost Explorer still answered {code or status} after {self.max_attempts} attempts (botocore "
                "standard retries); re-run later",
                where,
            )
        if code in AUTH_CODES or status in (401, 403):
            return SourceAuthError(SOURCE, f"AWS refused the request ({code}: {message}); {CREDENTIALS_HINT}", where)
        if code == "DataUnavailableException":
            return SourcePayloadError(
                SOURCE, "Cost Explorer has no data for these days yet: is Cost Explorer enabled on the account?", where
            )
        if code == "BillExpirationException":
            return SourcePayloadError(
                SOURCE, "these days are older than Cost Explorer keeps (about 14 months of daily data)", where
            )
        return SourcePayloadError(SOURCE, f"Cost Explorer answered {code or status}: {message}", where)


def _period(start: date, end: date) -> dict[str, str]:
    return {"Start": start.isoformat(), "End": end.isoformat()}  # End is exclusive


def _result_day(result: dict[str, Any], start: date, end: date) -> date:
    period = result.get("TimePeriod") or {}
    raw_start, raw_end = str(period.get("Start") or ""), str(period.get("End") or "")
    try:
        day, next_day = date.fromisoformat(raw_start[:10]), date.fromisoformat(raw_end[:10])
    except ValueError:
        raise SourcePayloadError(SOURCE, f"field 'TimePeriod' is {period!r}, not a day") from None
    day = bucket_day(SOURCE, utc_midnight(day), raw_start, start, end)
    if next_day != day + timedelta(days=1):
        raise SourcePayloadError(SOURCE, f"field 'TimePeriod' is {period!r}, not one day (DAILY)", day)
    return day


def _keys(group: dict[str, Any], day: date) -> tuple[str, str]:
    keys = group.get("Keys")
    if not isinstance(keys, list) or len(keys) != 2 or not all(isinstance(k, str) for k in keys):
        raise SourcePayloadError(SOURCE, f"field 'Keys' is {keys!r}, not the two group keys asked", day)
    return keys[0], keys[1]


def _metric(group: dict[str, Any], name: str, day: date) -> dict[str, Any]:
    metric = (group.get("Metrics") or {}).get(name)
    if not isinstance(metric, dict) or not isinstance(metric.get("Amount"), str):
        raise SourcePayloadError(SOURCE, f"field 'Metrics.{name}.Amount' is missing or not text", day)
    return metric


def _cost(group: dict[str, Any], day: date) -> Decimal:
    metric = _metric(group, COST, day)
    if metric.get("Unit") != "USD":
        raise SourcePayloadError(
            SOURCE, f"field 'Metrics.{COST}.Unit' is {metric.get('Unit')!r}: only USD is supported", day
        )
    try:
        return parse_money(metric["Amount"])
    except ValueError as exc:
        raise SourcePayloadError(SOURCE, f"field 'Metrics.{COST}.Amount': {exc}", day) from None


def _usage(group: dict[str, Any], day: date) -> tuple[Decimal | None, str | None]:
    if USAGE not in (group.get("Metrics") or {}):
        return None, None
    metric = _metric(group, USAGE, day)
    try:
        quantity, _ = fit_money(metric["Amount"])  # a quantity may carry more digits than the column
    except ValueError as exc:
        raise SourcePayloadError(SOURCE, f"field 'Metrics.{USAGE}.Amount': {exc}", day) from None
    unit = metric.get("Unit")
    return quantity, (str(unit) if unit not in (None, "", "N/A") else None)
