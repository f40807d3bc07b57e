"""AWS Cost Explorer through boto3's `ce` client: the AI services' daily cost per account, usage type and tag.

Cost Explorer groups by at most two keys per request, and mapping needs four (service, linked account,
usage type, team tag). Two of them are fixed by filters instead, with no estimate anywhere: the service
and either the linked account or the usage type, whichever gives fewer requests.

1. `GetDimensionValues(SERVICE)` over the range: the Marketplace model services, "... (Amazon Bedrock
   Edition)", which a filter cannot match by suffix (Dimensions accept only EQUALS).
2. One `GetCostAndUsage` over the whole range, filtered to the AI services and grouped by SERVICE and
   USAGE_TYPE: the (service, usage type) pairs with spend and their exact daily totals; and
   `GetDimensionValues(LINKED_ACCOUNT)` with the same filter: the accounts and their names.
3. With more usage-type pairs than accounts, a second totals request grouped by SERVICE and
   LINKED_ACCOUNT gives the (service, account) pairs; the fewer pairs of the two kinds are requested.
4. One `GetCostAndUsage` per pair (filtered to that service and account or usage type), grouped by the
   other of the two and the cost-allocation tag: the lines. They must add up to the pair's totals, day by
   day, and (per account) to the usage-type totals of step 2 as well.

A large organisation (hundreds of accounts, a few usage types) is then a few requests a day, whatever the
number of accounts; a single account with many models is one request per service.

Each request covers the whole range (DAILY granularity, End exclusive) and follows NextPageToken; a day
repeated across pages is merged, never counted twice, and every requested day must be answered.
Throttling and 5xx are retried by botocore's standard retry mode (bounded attempts).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from aispend_pipeline.core.days import bucket_day, merge_daily_buckets, require_every_day, utc_midnight
from aispend_pipeline.core.decoding import collector_paused
from aispend_pipeline.core.money import day_money_texts, parse_money
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
LINKED_ACCOUNT, USAGE_TYPE = "LINKED_ACCOUNT", "USAGE_TYPE"
GROUPED_BESIDE = {LINKED_ACCOUNT: USAGE_TYPE, USAGE_TYPE: LINKED_ACCOUNT}  # the fixed key -> the grouped one
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


Columns = dict[str, list[Any]]


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


LINE_FIELDS = tuple(f.name for f in fields(AwsCostLine))


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
        """Every AI cost line of the UTC days [start, end), as records (the pipeline stages the columns)."""
        return [
            AwsCostLine(*row[:7], Decimal(row[7]), None if row[8] is None else Decimal(row[8]), *row[9:])
            for columns in self.daily_cost_batches(start, end)
            for row in zip(*columns.values(), strict=True)
        ]

    def daily_cost_batches(self, start: date, end: date) -> Iterator[Columns]:
        """The lines of [start, end) as columns named like `AwsCostLine`'s fields (money as exact text), one
        pair (service and account, or service and usage type) at a time.

        A pair's lines are handed over as soon as they add up to its totals, so a pull of hundreds of
        accounts holds one pair's answer, not the whole range's lines; no object is made per line."""
        from botocore import exceptions as boto_exceptions

        where = f"{start}..{end - timedelta(days=1)}"
        try:
            ai = equals("SERVICE", self.ai_services(start, end))
            by_usage_type = self._totals(start, end, ai, USAGE_TYPE)
            names = self._accounts(start, end, ai)
            fixed, totals = USAGE_TYPE, by_usage_type
            if len(by_usage_type) > len(names):  # (service, account) pairs may be fewer: count them
                by_account = self._totals(start, end, ai, LINKED_ACCOUNT)
                if len(by_account) < len(by_usage_type):
                    fixed, totals = LINKED_ACCOUNT, by_account
            summed: dict[tuple[str, str], dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
            for (service, value), pair_totals in sorted(totals.items()):
                flt = {"And": [equals("SERVICE", [service]), equals(fixed, [value])]}
                by_line = [dimension(GROUPED_BESIDE[fixed]), {"Type": "TAG", "Key": self.tag_key}]
                answer = self._answer(self._request(start, end, flt, by_line, [COST, USAGE]), start, end)
                columns = self._columns(answer, service, fixed, value, names | answer.names)
                del answer  # one pair's answer at a time (at full size 300 accounts x 365 days: ~130 MB)
                by_day: dict[date, Decimal] = defaultdict(Decimal)
                for day, usage_type, cost in zip(
                    columns["usage_date"], columns["usage_type"], map(Decimal, columns["cost_usd"]), strict=True
                ):
                    by_day[day] += cost
                    summed[(service, usage_type)][day] += cost
                _reconciled(by_day, pair_totals, service, fixed, value)
                yield columns
                del columns
            for (service, usage_type), pair_totals in sorted(by_usage_type.items()):
                _reconciled(summed.get((service, usage_type), {}), pair_totals, service, USAGE_TYPE, usage_type)
        except boto_exceptions.ClientError as exc:
            raise self._client_error(exc, where) from None
        except msgspec.DecodeError as exc:
            raise SourcePayloadError(
                SOURCE, f"Cost Explorer answered HTTP 200 with a body that is not JSON ({exc}); re-run later", where
            ) from None
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

    def _accounts(self, start: date, end: date, ai: dict[str, Any]) -> dict[str, str]:
        """The linked accounts with AI spend in the range, and their names ("" when Cost Explorer has none)."""
        request: dict[str, Any] = {"TimePeriod": _period(start, end), "Dimension": LINKED_ACCOUNT, "Filter": ai}
        return {
            str(v.get("Value") or ""): str((v.get("Attributes") or {}).get("description") or "")
            for page in self._pages("get_dimension_values", request)
            for v in page.get("DimensionValues") or []
        }

    def _totals(
        self, start: date, end: date, ai: dict[str, Any], beside: str
    ) -> dict[tuple[str, str], dict[date, Decimal]]:
        """The daily totals of each (service, `beside` value) pair with spend: SERVICE and `beside` grouped."""
        answer = self._answer(
            self._request(start, end, ai, [dimension("SERVICE"), dimension(beside)], [COST]), start, end
        )
        totals: dict[tuple[str, str], dict[date, Decimal]] = defaultdict(dict)
        for day, groups in answer.groups.items():
            for group in groups:
                service, value = _keys(group, day)
                if not is_ai_service(service, self.services):
                    raise SourcePayloadError(SOURCE, f"the answer holds service {service!r}, which was not asked", day)
                totals[(service, value)][day] = _cost(group, day)
        return dict(totals)

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
            client.meta.events.register("before-parse.cost-explorer", _decoded_answer)
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

    def _columns(self, answer: _Answer, service: str, fixed: str, value: str, names: dict[str, str]) -> Columns:
        """One answer's groups as columns, in one pass per day (money checked as a column: `day_money_texts`)."""
        columns: Columns = {name: [] for name in LINE_FIELDS}
        for day, groups in sorted(answer.groups.items()):
            grouped, tags = zip(*(_keys(group, day) for group in groups), strict=True) if groups else ((), ())
            costs = [_metric(group, COST, day) for group in groups]
            if any(metric.get("Unit") != "USD" for metric in costs):
                unit = next(m.get("Unit") for m in costs if m.get("Unit") != "USD")
                raise SourcePayloadError(SOURCE, f"field 'Metrics.{COST}.Unit' is {unit!r}: only USD is supported", day)
            usage = [_metric(g, USAGE, day) if USAGE in (g.get("Metrics") or {}) else None for g in groups]
            team_tags = []
            for tag in tags:
                key, _, tag_value = tag.partition("$")
                if key != self.tag_key:
                    raise SourcePayloadError(SOURCE, f"group key {tag!r} is not the tag {self.tag_key!r}", day)
                team_tags.append(tag_value or None)
            accounts, usage_types = ([value] * len(groups), list(grouped))
            if fixed == USAGE_TYPE:
                accounts, usage_types = usage_types, accounts
            n = len(groups)
            columns["usage_date"] += [day] * n
            columns["service"] += [service] * n
            columns["account_id"] += accounts
            columns["account_name"] += [names.get(a) or None for a in accounts]
            columns["usage_type"] += usage_types
            columns["tag_key"] += [self.tag_key] * n
            columns["team_tag"] += team_tags
            columns["cost_usd"] += _exact_costs([m["Amount"] for m in costs], day)
            quantities = [m["Amount"] if m else None for m in usage]  # may carry more digits than the column
            columns["quantity"] += day_money_texts(
                SOURCE, f"Metrics.{USAGE}.Amount", quantities, day, None, optional=True
            )
            columns["unit"] += [None if not m or m.get("Unit") in (None, "", "N/A") else str(m["Unit"]) for m in usage]
            columns["estimated"] += [answer.estimated.get(day, False)] * n
        return columns

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


def _decoded_answer(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """A successful answer decoded in one pass (msgspec) instead of botocore's walk of the output shape, field
    by field (half of a large pull's time). For Cost Explorer's JSON 1.1 answers both give the same keys and
    values (strings, numbers, booleans; no timestamps or blobs); errors are still parsed by botocore."""
    if response_dict.get("status_code") == 200 and response_dict.get("body"):
        with collector_paused():
            customized_response_dict.update(msgspec.json.decode(response_dict["body"]))
        response_dict["body"] = b"{}"


def _exact_costs(amounts: list[Any], day: date) -> list[str | None]:
    """A day's UnblendedCost amounts as exact text: an amount that does not fit DECIMAL(38, 12) is an error,
    never rounded (Cost Explorer writes 10 decimal places)."""
    rounding: dict[date, Decimal] = {}
    texts = day_money_texts(SOURCE, f"Metrics.{COST}.Amount", amounts, day, rounding)
    if rounding:
        raise SourcePayloadError(SOURCE, f"field 'Metrics.{COST}.Amount' has more than 12 decimal places", day)
    return texts


def _period(start: date, end: date) -> dict[str, str]:
    return {"Start": start.isoformat(), "End": end.isoformat()}  # End is exclusive


def _reconciled(summed: dict[date, Decimal], totals: dict[date, Decimal], service: str, fixed: str, value: str) -> None:
    """A pair's lines must add up to Cost Explorer's total for the pair exactly, day by day."""
    for day in sorted(set(summed) | set(totals)):
        if summed.get(day, Decimal(0)) != totals.get(day, Decimal(0)):
            what = f"account {value}" if fixed == LINKED_ACCOUNT else f"usage type {value}"
            raise SourcePayloadError(
                SOURCE,
                f"{service}, {what}: the lines total {summed.get(day, 0)} USD but Cost Explorer's total is "
                f"{totals.get(day, 0)} USD (its data changed between requests); stored days were kept: re-run later",
                day,
            )


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
