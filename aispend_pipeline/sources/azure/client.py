"""Azure Cost Management: the AI lines of the query API at a scope, with exact money (no Dagster).

One `query.usage` call of azure-mgmt-costmanagement per window of at most one calendar month (the query API
silently shortens a Daily range longer than a month), followed by its `nextLink` pages, which the SDK does
not follow: each is POSTed through the client's own pipeline with the same body. The SDK parses numbers
as float, so every answer is read from the raw response text with exact decimals. A 204 is an empty
answer; 408/429/5xx and connection failures are retried here (the SDK's own retries are off: it does
not retry a 429 without `Retry-After`), waiting as long as the longest of Cost Management's
`x-ms-ratelimit-microsoft.costmanagement-*-retry-after` headers and `Retry-After` asks.
"""

from __future__ import annotations

import calendar
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aispend_pipeline.core.http import is_retryable, retry_after_seconds, short_text
from aispend_pipeline.core.money import fit_money
from aispend_pipeline.core.secrets import safe_url
from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError

SOURCE = "azure"
SCOPE_SETTING = "AZURE_COST_SCOPE"
ENDPOINT_SETTING = "AISPEND_AZURE_ENDPOINT"
DEFAULT_ENDPOINT = "https://management.azure.com"
DEFAULT_TAG_KEY = "team"
API_VERSION = "2025-03-01"
PAGE_ROWS = 5000  # $top: the most rows the query API serves per page
MAX_PAGES = 10_000
FOUNDRY_MODELS = "Foundry Models"
COGNITIVE_SERVICES = "Cognitive Services"
AZURE_OPENAI = "Azure OpenAI"
DIMENSIONS = (
    "SubscriptionId",
    "ResourceGroupName",
    "ResourceLocation",
    "ServiceName",
    "MeterSubCategory",
    "Meter",
    "ChargeType",
)
# ChargeType -> FOCUS ChargeCategory (ActualCost); anything else is kept as Usage.
CHARGE_CATEGORIES = {
    "usage": "Usage",
    "purchase": "Purchase",
    "refund": "Credit",
    "credit": "Credit",
    "tax": "Tax",
    "adjustment": "Adjustment",
    "roundingadjustment": "Adjustment",
}
# Column names the answer may use for each aggregation (the source column or the alias we sent).
COST_COLUMNS = ("cost", "pretaxcost", "totalcost")
COST_USD_COLUMNS = ("costusd", "pretaxcostusd", "totalcostusd")
SCOPE_PREFIXES = (
    "subscriptions/",
    "providers/microsoft.billing/billingaccounts/",
    "providers/microsoft.management/managementgroups/",
)
RATE_LIMIT_HEADER = "x-ms-ratelimit-microsoft.costmanagement-"


@dataclass(frozen=True)
class AzureCostLine:
    usage_date: date
    subscription_id: str | None
    resource_group: str | None
    region: str | None
    service: str
    meter_subcategory: str | None
    meter: str | None
    charge_type: str | None
    charge_category: str
    team_tag: str | None
    currency: str
    cost: Decimal  # in the billing currency
    cost_usd: Decimal


def parse_services(extra: str | None) -> tuple[str, ...]:
    """Services counted whole: Foundry Models plus `AISPEND_AZURE_EXTRA_SERVICES` (comma-separated)."""
    added = [s.strip() for s in (extra or "").split(",") if s.strip()]
    return tuple(dict.fromkeys([FOUNDRY_MODELS, *added]))


def normalise_scope(scope: str) -> str:
    """The scope without leading or trailing slashes; anything but a Cost Management scope is an error."""
    cleaned = (scope or "").strip().strip("/")
    if not cleaned.lower().startswith(SCOPE_PREFIXES) or "?" in cleaned or "//" in cleaned:
        raise SourcePayloadError(
            SOURCE,
            f"{SCOPE_SETTING} must name a Cost Management scope: /subscriptions/<id>, "
            "/subscriptions/<id>/resourceGroups/<name>, /providers/Microsoft.Management/managementGroups/<id> "
            "or /providers/Microsoft.Billing/billingAccounts/<id>",
        )
    return cleaned


def query_windows(start: date, end: date) -> Iterator[tuple[date, date]]:
    """[start, end) cut into windows of at most one calendar month (a Daily query's longest range)."""
    first = start
    while first < end:
        month = first.month % 12 + 1
        year = first.year + (first.month == 12)
        next_start = date(year, month, min(first.day, calendar.monthrange(year, month)[1]))
        yield first, min(next_start, end)
        first = next_start


def is_ai_line(service: str | None, subcategory: str | None, services: tuple[str, ...]) -> bool:
    """INTERFACE.md's rule: a listed service, or Cognitive Services metered as Azure OpenAI."""
    return service in services or (service == COGNITIVE_SERVICES and subcategory == AZURE_OPENAI)


def tls_verify() -> str | bool:
    """The platform's trust settings: `REQUESTS_CA_BUNDLE`, else `SSL_CERT_FILE`, else the default bundle."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or True


class AzureCostClient:
    """Reads the AI cost lines of one Cost Management scope per UTC day."""

    def __init__(
        self,
        scope: str,
        endpoint: str | None = None,
        *,
        tag_key: str = DEFAULT_TAG_KEY,
        services: tuple[str, ...] = (FOUNDRY_MODELS,),
        credential: Any = None,
        max_retries: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        timeout_seconds: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.scope = normalise_scope(scope)
        self.endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        self.tag_key = tag_key or DEFAULT_TAG_KEY
        self.services = services
        self.credential = credential
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.sleep = sleep
        self.request_count = 0
        self.rounding_usd: dict[date, Decimal] = {}
        self._client: Any = None

    # --- the query

    def definition(self, start: date, end: date) -> Any:
        """The QueryDefinition of the UTC days [start, end): `to` is inclusive, so it is the last second."""
        from azure.mgmt.costmanagement import models

        last = datetime(end.year, end.month, end.day, tzinfo=UTC) - timedelta(seconds=1)

        def dimension(name: str, values: list[str]) -> Any:
            expression = models.QueryComparisonExpression(name=name, operator="In", values_property=values)
            return models.QueryFilter(dimensions=expression)

        ai_filter = models.QueryFilter(
            or_property=[
                dimension("ServiceName", list(self.services)),
                models.QueryFilter(
                    and_property=[
                        dimension("ServiceName", [COGNITIVE_SERVICES]),
                        dimension("MeterSubCategory", [AZURE_OPENAI]),
                    ]
                ),
            ]
        )
        return models.QueryDefinition(
            type="ActualCost",
            timeframe="Custom",
            time_period=models.QueryTimePeriod(
                from_property=datetime(start.year, start.month, start.day, tzinfo=UTC), to=last
            ),
            dataset=models.QueryDataset(
                granularity="Daily",
                aggregation={
                    "totalCost": models.QueryAggregation(name="Cost", function="Sum"),
                    "totalCostUSD": models.QueryAggregation(name="CostUSD", function="Sum"),
                },
                grouping=[
                    *(models.QueryGrouping(type="Dimension", name=name) for name in DIMENSIONS),
                    models.QueryGrouping(type="TagKey", name=self.tag_key),
                ],
                filter=ai_filter,
            ),
        )

    def daily_costs(self, start: date, end: date) -> list[AzureCostLine]:
        """Every AI cost line of the UTC days [start, end): one query (and its pages) per month-long window."""
        seen: dict[tuple[Any, ...], AzureCostLine] = {}
        for first, stop in query_windows(start, end):
            where = f"{first}..{stop - timedelta(days=1)}"
            for page in self._pages(first, stop, where):
                for line in self._lines(page, first, stop, where):
                    key = (
                        line.usage_date,
                        line.subscription_id,
                        line.resource_group,
                        line.region,
                        line.service,
                        line.meter_subcategory,
                        line.meter,
                        line.charge_type,
                        line.team_tag,
                        line.currency,
                    )
                    if key in seen:
                        # Rows are grouped, so each key is unique: a repeat is a page served twice.
                        if seen[key] != line:
                            raise SourcePayloadError(
                                SOURCE, f"group {key[1:]!r} came twice with different amounts", line.usage_date
                            )
                        continue
                    seen[key] = line
        return list(seen.values())

    def _sdk(self) -> Any:
        if self._client is None:
            from azure.mgmt.costmanagement import CostManagementClient

            credential = self.credential
            if credential is None:
                from azure.identity import DefaultAzureCredential

                try:
                    credential = DefaultAzureCredential()
                except ValueError as exc:  # e.g. an AZURE_TOKEN_CREDENTIALS value it does not know
                    raise SourceAuthError(SOURCE, f"azure-identity refused its settings ({_first_line(exc)})") from None
            self._client = CostManagementClient(
                credential,
                base_url=self.endpoint,
                api_version=API_VERSION,
                connection_verify=tls_verify(),
                retry_total=0,  # retried here, with Cost Management's own headers
                connection_timeout=self.timeout_seconds,
                read_timeout=self.timeout_seconds,
            )
        return self._client

    def _pages(self, start: date, end: date, where: str) -> Iterator[dict[str, Any]]:
        """Each page's `properties` (an empty page for a 204), following `nextLink` with the same body."""
        from azure.core.rest import HttpRequest
        from azure.mgmt.costmanagement._utils.model_base import SdkJSONEncoder

        definition = self.definition(start, end)
        body = json.dumps(definition, cls=SdkJSONEncoder, exclude_readonly=True)
        client = self._sdk()

        def first_page() -> Any:
            return client.query.usage(
                self.scope,
                definition,
                params={"$top": PAGE_ROWS},
                stream=True,  # the SDK would parse the body with floats; it is read as text below
                cls=lambda pipeline_response, _deserialized, _headers: pipeline_response.http_response,
            )

        response = self._send(first_page, where)
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            properties = self._properties(response, where)
            yield properties
            next_link = properties.get("nextLink")
            if not next_link:
                return
            if next_link in seen:
                raise SourcePayloadError(SOURCE, "the API handed out the same nextLink twice; stopped paging", where)
            seen.add(next_link)
            request = HttpRequest("POST", next_link, content=body, headers={"Content-Type": "application/json"})
            response = self._send(lambda request=request: client.send_request(request), where)
        raise SourcePayloadError(SOURCE, f"nextLink continued for {MAX_PAGES} pages; stopped paging", where)

    def _send(self, call: Callable[[], Any], where: str) -> Any:
        """One request with retries; returns the raw response of a 200 or 204, else a clear error."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        attempt = 0
        while True:
            attempt += 1
            self.request_count += 1
            try:
                response = call()
            except ClientAuthenticationError as exc:
                if exc.response is None:  # the credential found no token: nothing was sent
                    self.request_count -= 1
                    raise SourceAuthError(
                        SOURCE,
                        f"azure-identity found no credential ({_first_line(exc)}): log in with `az login`, or set "
                        "AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, or use a managed identity",
                        where,
                    ) from None
                response = exc.response
            except HttpResponseError as exc:
                if exc.response is None:
                    raise
                response = exc.response
            except (ServiceRequestError, ServiceResponseError) as exc:
                if attempt > self.max_retries:
                    raise SourceUnavailableError(
                        SOURCE,
                        f"could not reach Cost Management at {safe_url(self.endpoint)} after {attempt} attempts "
                        f"({type(exc).__name__}); check {ENDPOINT_SETTING} and the network",
                        where,
                    ) from None
                self.sleep(self._backoff(attempt))
                continue
            status = response.status_code
            if status in (200, 204):
                return response
            if is_retryable(status) and attempt <= self.max_retries:
                asked = self._retry_after(response.headers)
                self.sleep(self._backoff(attempt) if asked is None else asked)
                continue
            raise self._error(response, attempt - 1, where)

    def _retry_after(self, headers: Mapping[str, str]) -> float | None:
        """The longest wait any rate-limit header asks for (Cost Management's own ones and Retry-After)."""
        waits = [retry_after_seconds(headers, self.max_backoff_seconds)]
        for name, value in headers.items():
            if name.lower().startswith(RATE_LIMIT_HEADER) and name.lower().endswith("retry-after"):
                try:
                    waits.append(min(max(float(value), 0.0), self.max_backoff_seconds))
                except ValueError:
                    continue
        known = [w for w in waits if w is not None]
        return max(known) if known else None

    def _backoff(self, attempt: int) -> float:
        wait = min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)
        return wait * (1 - 0.5 * random.random())

    def _error(self, response: Any, retries: int, where: str) -> Exception:
        status = response.status_code
        code, message = _error_body(response)
        said = f"{code}: {message}" if code else message
        if status in (401, 403):
            return SourceAuthError(
                SOURCE,
                f"Cost Management answered {status} ({said}): the identity azure-identity found needs the Cost "
                f"Management Reader role on {SCOPE_SETTING} ({self.scope})",
                where,
            )
        if is_retryable(status):
            return SourceUnavailableError(
                SOURCE,
                f"Cost Management still answered {status} after {retries} retries ({said}); it is "
                "unavailable or throttling: re-run later",
                where,
            )
        if status == 404:
            return SourcePayloadError(
                SOURCE, f"Cost Management answered 404 ({said}): check {SCOPE_SETTING} ({self.scope})", where
            )
        return SourcePayloadError(SOURCE, f"Cost Management answered {status} ({said})", where)

    def _properties(self, response: Any, where: str) -> dict[str, Any]:
        response.read()  # a streamed first page is loaded here
        if response.status_code == 204:
            return {"columns": [], "rows": [], "nextLink": None}
        try:
            body = json.loads(response.text(), parse_float=Decimal)
        except ValueError:
            raise SourcePayloadError(SOURCE, "the query answered 200 with a body that is not JSON", where) from None
        properties = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(properties, dict):
            raise SourcePayloadError(SOURCE, "the query answer has no 'properties' object", where)
        if not isinstance(properties.get("columns") or [], list) or not isinstance(properties.get("rows") or [], list):
            raise SourcePayloadError(SOURCE, "the query answer's 'columns' and 'rows' must be lists", where)
        return properties

    # --- rows to lines

    def _lines(self, page: dict[str, Any], start: date, end: date, where: str) -> Iterator[AzureCostLine]:
        rows = page.get("rows") or []
        if not rows:
            return
        index = _column_index(page.get("columns") or [], where)
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, list) or len(row) < len(index):
                raise SourcePayloadError(SOURCE, f"row {number} does not match the answer's columns", where)
            line = self._line(row, index, start, end, where)
            if line is not None:
                yield line

    def _line(self, row: list[Any], index: dict[str, int], start: date, end: date, where: str) -> AzureCostLine | None:
        def text(name: str) -> str | None:
            position = index.get(name)
            value = None if position is None else row[position]
            return None if value in (None, "") else str(value)

        day = _usage_day(row[index["usagedate"]], start, end, where)
        service, subcategory = text("servicename"), text("metersubcategory")
        if not is_ai_line(service, subcategory, self.services):
            return None  # never count a line outside the AI rule, whatever the filter let through
        currency = (text("currency") or "").upper()
        cost = self._money(row[index["cost"]], "Cost", day)
        if "costusd" in index:
            cost_usd = self._money(row[index["costusd"]], "CostUSD", day)
        elif currency == "USD":
            cost_usd = cost
        else:
            raise SourcePayloadError(
                SOURCE, f"the answer is in {currency or 'an unnamed currency'} and has no CostUSD column", day
            )
        tag_key = text("tagkey")
        tag_value = text("tagvalue")
        charge_type = text("chargetype")
        return AzureCostLine(
            usage_date=day,
            subscription_id=text("subscriptionid"),
            resource_group=text("resourcegroupname"),
            region=text("resourcelocation"),
            service=service or "",
            meter_subcategory=subcategory,
            meter=text("meter"),
            charge_type=charge_type,
            charge_category=CHARGE_CATEGORIES.get((charge_type or "usage").lower(), "Usage"),
            team_tag=tag_value if tag_key is None or tag_key.lower() == self.tag_key.lower() else None,
            currency=currency,
            cost=cost,
            cost_usd=cost_usd,
        )

    def _money(self, value: Any, field: str, day: date) -> Decimal:
        try:
            amount, rounding = fit_money(value)
        except ValueError as exc:
            raise SourcePayloadError(SOURCE, f"field '{field}': {exc}", day) from None
        if rounding and field == "CostUSD":
            self.rounding_usd[day] = self.rounding_usd.get(day, Decimal(0)) + rounding
        return amount


def _column_index(columns: list[Any], where: str) -> dict[str, int]:
    """Column positions by lower-case name (the order is not guaranteed), cost columns under one name."""
    index: dict[str, int] = {}
    for position, column in enumerate(columns):
        name = str((column or {}).get("name") if isinstance(column, dict) else "").lower()
        if name in COST_USD_COLUMNS:
            name = "costusd"
        elif name in COST_COLUMNS:
            name = "cost"
        index.setdefault(name, position)
    for required, shown in (("usagedate", "UsageDate"), ("cost", "Cost"), ("servicename", "ServiceName")):
        if required not in index:
            raise SourcePayloadError(SOURCE, f"the answer has no '{shown}' column", where)
    return index


def _usage_day(value: Any, start: date, end: date, where: str) -> date:
    """`UsageDate` is a yyyymmdd number (20261101); it must fall within the window asked for."""
    try:
        number = int(value) if not isinstance(value, Decimal) or value == value.to_integral_value() else None
        day = datetime.strptime(str(number), "%Y%m%d").date() if number is not None else None
    except (TypeError, ValueError):
        day = None
    if day is None or not start <= day < end:
        raise SourcePayloadError(SOURCE, f"field 'UsageDate' is {value!r}, not a yyyymmdd day within {where}", where)
    return day


def _error_body(response: Any) -> tuple[str | None, str]:
    """ARM's `{"error": {"code", "message"}}`, shortened and scrubbed; never the whole body."""
    try:
        body = json.loads(response.text() or "null")
    except ValueError:
        return None, short_text(response.text() or response.reason or "no body")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return (str(error["code"]) if error.get("code") else None), short_text(str(error.get("message") or ""))
    return None, short_text(str(body or response.reason or "no body"))


def _first_line(exc: Exception) -> str:
    return short_text(str(getattr(exc, "message", None) or exc))
