"""The Azure Cost Management query API over HTTPS, for a synthetic billing account with AI and non-AI spend.

It serves `POST /{scope}/providers/Microsoft.CostManagement/query?api-version=...` as the service does:
Bearer auth (a token handed out by a stub `az` put first on PATH, so that `DefaultAzureCredential`
narrowed to `AzureCliCredential` gets one offline), the QueryDefinition body evaluated (ActualCost,
Custom `from`..`to` with `to` inclusive, Daily granularity, up to 2 aggregations, dimension and TagKey
groupings, `and`/`or`/`dimensions`/`tags` filters with `In`), the columns/rows answer with `UsageDate` as a
yyyymmdd integer and a `Currency` column, server-side pages linked by `nextLink` (POST the same body),
204 for an answer with no rows, days without rows left out, a Daily range longer than a month silently
shortened to its last month, ARM error bodies, and whatever `fail_next` injects (429s with the Cost
Management retry-after headers). TLS comes from a local CA (`trustme`) whose bundle `env` names.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import os
import secrets
import shutil
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from aispend_pipeline.simulators.base import HttpSimulator
from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.simulators.server import HttpError, Reply, Request, Route, to_json

BILLING_ACCOUNT = "providers/Microsoft.Billing/billingAccounts/8608480"
MANAGEMENT_GROUP = "providers/Microsoft.Management/managementGroups/ai-platform"
SUB_PROD = "7c0a3e55-1b2d-4f6e-9a8b-0c1d2e3f4a5b"
SUB_RESEARCH = "2f9d8c7b-6a5e-4d3c-8b2a-1f0e9d8c7b6a"
SUB_SHARED = "b4c3d2e1-f0a9-4b8c-9d7e-6f5a4b3c2d1e"  # outside the management group
MANAGEMENT_GROUP_SUBSCRIPTIONS = (SUB_PROD, SUB_RESEARCH)
API_VERSIONS = ("2025-03-01", "2024-08-01", "2023-11-01", "2023-03-01")
DEFAULT_PAGE_ROWS = 1000
MAX_PAGE_ROWS = 5000
MAX_AGGREGATIONS = 2
MAX_TAG_GROUPINGS = 2
MAX_GROUPINGS = 15
FOUNDRY, COGNITIVE = "Foundry Models", "Cognitive Services"
AI_TAG_KEY = "team"
MONEY_QUANTUM = Decimal(1).scaleb(-12)
DIMENSIONS = (
    "ResourceGroup", "ResourceGroupName", "ResourceLocation", "ResourceType", "ResourceId", "MeterId",
    "MeterCategory", "MeterSubcategory", "Meter", "SubscriptionId", "SubscriptionName", "ServiceName",
    "ServiceTier", "ChargeType", "PublisherType", "PricingModel", "BillingAccountId",
)  # fmt: skip
AGGREGATION_COLUMNS = ("Cost", "CostUSD", "PreTaxCost", "PreTaxCostUSD", "UsageQuantity")

# meter -> (service, meter subcategory, share of a resource's spend)
METERS: dict[str, tuple[str, str, float]] = {
    "gpt-4o 0806 Inp glbl 1K Tokens": (FOUNDRY, "Azure OpenAI", 0.25),
    "gpt-4o 0806 Outp glbl 1K Tokens": (FOUNDRY, "Azure OpenAI", 0.40),
    "gpt-4o 0806 cchd Inp glbl 1K Tokens": (FOUNDRY, "Azure OpenAI", 0.05),
    "gpt-4o-mini 0718 Inp glbl 1K Tokens": (FOUNDRY, "Azure OpenAI", 0.10),
    "gpt-4o-mini 0718 Outp glbl 1K Tokens": (FOUNDRY, "Azure OpenAI", 0.15),
    "text-embedding-3-small 1K Tokens": (FOUNDRY, "Azure OpenAI", 0.05),
    "Llama-3.3-70B-Instruct Inp Tokens": (FOUNDRY, "Meta", 0.10),
    "Llama-3.3-70B-Instruct Outp Tokens": (FOUNDRY, "Meta", 0.12),
    "gpt 35 turbo Input Tokens": (COGNITIVE, "Azure OpenAI", 0.10),
    "gpt 35 turbo Output Tokens": (COGNITIVE, "Azure OpenAI", 0.12),
    "S1 Speech To Text": (COGNITIVE, "Speech", 0.20),  # Cognitive Services, but not AI spend as counted
    "D4s v5": ("Virtual Machines", "Dsv5 Series", 0.6),
    "Hot LRS Data Stored": ("Storage", "General Block Blob v2", 0.2),
    "vCPU Hours": ("Azure Machine Learning", "Machine Learning", 0.3),
}
_CHAT = tuple(m for m, (s, c, _) in METERS.items() if s == FOUNDRY and c == "Azure OpenAI")
_LLAMA = ("Llama-3.3-70B-Instruct Inp Tokens", "Llama-3.3-70B-Instruct Outp Tokens")
_LEGACY = ("gpt 35 turbo Input Tokens", "gpt 35 turbo Output Tokens", "S1 Speech To Text")
_NON_AI = ("D4s v5", "Hot LRS Data Stored", "vCPU Hours")


@dataclass(frozen=True)
class Resource:
    subscription_id: str
    resource_group: str
    location: str
    tags: tuple[tuple[str, str], ...]
    budget: float  # USD on a weekday
    activity: float  # chance a meter has usage on a day
    meters: tuple[str, ...]


RESOURCES: tuple[Resource, ...] = (
    Resource(SUB_PROD, "rg-search-ai", "eastus", (("team", "search"), ("env", "prod")), 55.0, 1.0,
             _CHAT[:2] + _CHAT[3:] + _NON_AI[:1]),
    Resource(SUB_PROD, "rg-support-bot", "swedencentral", (("team", "support"),), 40.0, 1.0, _CHAT[:3] + _LEGACY),
    Resource(SUB_PROD, "rg-platform-shared", "eastus2", (), 30.0, 0.9, _CHAT[3:] + _NON_AI[1:2]),
    Resource(SUB_RESEARCH, "rg-research-models", "westus3", (("env", "dev"),), 35.0, 0.85,
             _LLAMA + _CHAT[:2] + _NON_AI[2:]),
    Resource(SUB_SHARED, "rg-data-enrichment", "northeurope", (("team", "data-platform"),), 20.0, 0.95,
             _CHAT[3:5] + _LLAMA[:1]),
)  # fmt: skip
ACCOUNT_START = date(2025, 1, 1)  # the billing account has no usage before this day
PTU_METER = "Provisioned Managed Global Units"  # a monthly reservation purchase on the 1st


@dataclass(frozen=True)
class CostRow:
    """One usage record of the synthetic billing account (the dimensions a query can group by)."""

    usage_date: date
    subscription_id: str
    resource_group: str
    location: str
    service: str
    meter_subcategory: str
    meter: str
    charge_type: str
    tags: tuple[tuple[str, str], ...]
    cost_usd: Decimal  # a double as Azure serialises it: up to 17 significant digits

    def dimension(self, name: str) -> str:
        return {
            "subscriptionid": self.subscription_id,
            "subscriptionname": {SUB_PROD: "ai-prod", SUB_RESEARCH: "ai-research"}.get(self.subscription_id, "shared"),
            "resourcegroup": self.resource_group,
            "resourcegroupname": self.resource_group,
            "resourcelocation": self.location,
            "servicename": self.service,
            "metercategory": self.service,
            "metersubcategory": self.meter_subcategory,
            "meter": self.meter,
            "chargetype": self.charge_type,
            "publishertype": "Azure",
            "pricingmodel": "Reservation" if self.charge_type == "Purchase" else "OnDemand",
            "billingaccountid": BILLING_ACCOUNT.rsplit("/", 1)[-1],
        }.get(name.lower(), "")

    def in_scope(self, scope: str) -> bool:
        lowered = scope.lower()
        if lowered == BILLING_ACCOUNT.lower():
            return True
        if lowered == MANAGEMENT_GROUP.lower():
            return self.subscription_id in MANAGEMENT_GROUP_SUBSCRIPTIONS
        parts = lowered.split("/")
        if parts[1] != self.subscription_id.lower():
            return False
        return len(parts) == 2 or parts[3] == self.resource_group.lower()


def as_double(value: float) -> Decimal:
    """The shortest text of a double, as Azure's JSON writes it (`0.30000000000000004`, `1E-07`)."""
    return Decimal(repr(value))


def fitted(value: Decimal) -> Decimal:
    """A cell rounded half-even to the warehouse's 12 decimals (what the pipeline stores)."""
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN) if value.as_tuple().exponent < -12 else value  # type: ignore[operator]


def cost_rows(org: SyntheticOrg, day: date) -> list[CostRow]:
    """The day's usage records, AI and non-AI, in every subscription of the billing account."""
    rows: list[CostRow] = []
    if day < ACCOUNT_START:
        return rows
    for resource in RESOURCES:
        shares = sum(METERS[m][2] for m in resource.meters)
        for meter in resource.meters:
            service, subcategory, share = METERS[meter]
            key = f"{resource.subscription_id}|{resource.resource_group}|{meter}"
            amount = org._amount("azure", day, key, resource.budget * share / shares, resource.activity)
            if amount is None:
                continue
            cost = as_double(float(amount) / 3) if "Outp" in meter else as_double(float(amount))
            rows.append(
                CostRow(
                    day, resource.subscription_id, resource.resource_group, resource.location, service,
                    subcategory, meter, "Usage", resource.tags, cost,
                )
            )  # fmt: skip
    if day.day == 1:
        rows.append(
            CostRow(day, SUB_PROD, "rg-support-bot", "swedencentral", FOUNDRY, "Azure OpenAI", PTU_METER, "Purchase",
                    (("team", "support"),), Decimal("260.000000000000"))
        )  # fmt: skip
    return rows


def error_code(status: int) -> str:
    return {
        400: "BadRequest",
        401: "AuthenticationFailed",
        403: "AuthorizationFailed",
        404: "NotFound",
        429: "429",
        500: "InternalServerError",
        503: "ServiceUnavailable",
    }.get(status, "Error")


def error_body(status: int, message: str) -> dict[str, Any]:
    """ARM's error envelope (what azure-core's ARMErrorFormat reads)."""
    return {"error": {"code": error_code(status), "message": message}}


_CA: dict[str, Any] = {}
_CA_LOCK = threading.Lock()


def _local_ca() -> Any:
    """One local CA and 127.0.0.1 certificate per process (issuing one per simulator slows the tests)."""
    with _CA_LOCK:
        if "ca" not in _CA:
            import trustme

            ca = trustme.CA()
            _CA["ca"], _CA["cert"] = ca, ca.issue_cert("127.0.0.1", "localhost")
        return _CA["ca"], _CA["cert"]


class AzureCostSimulator(HttpSimulator):
    """Cost Management's query API for the synthetic billing account, over HTTPS on 127.0.0.1."""

    source = "azure"

    def __init__(self, org: SyntheticOrg, *, max_page_size: int | None = None, **server_options: Any) -> None:
        import ssl

        ca, cert = _local_ca()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.ca = ca
        super().__init__(org, max_page_size=max_page_size, ssl_context=context, **server_options)
        self.token = "eyJ0eXAiOiJKV1Qi.sim-" + secrets.token_hex(16)
        self.scope = BILLING_ACCOUNT
        self.billing_currency = "USD"
        self.usd_per_unit = Decimal(1)  # billing currency -> USD for CostUSD
        self.extra_rows: list[CostRow] = []  # rows tests add (exact values, other services)
        self.ignore_filter = False  # a faulty server answering every service
        self.reverse_columns = False  # the column order is not guaranteed
        self.queries: list[dict[str, Any]] = []  # the bodies received, first pages only
        self.fail_page: tuple[int, int, dict[str, str]] | None = None  # (nth page, status, headers), once
        self._lock = threading.Lock()
        self._served: list[str] = []
        self._dir: Path | None = None

    def _pages_served(self, digest: str) -> list[str]:
        with self._lock:
            return [d for d in self._served if d == digest]

    # --- lifecycle and settings

    def start(self) -> None:
        super().start()
        self._dir = Path(tempfile.mkdtemp(prefix="aispend-azure-sim-"))
        (self._dir / "bin").mkdir()
        bundle = self._dir / "ca-bundle.pem"
        try:
            import certifi

            public = Path(certifi.where()).read_text()
        except ImportError:  # pragma: no cover - certifi comes with requests
            public = ""
        # The local CA added to the public ones, so real HTTPS in the same process still verifies.
        bundle.write_text(public + "\n" + self.ca.cert_pem.bytes().decode())
        self._write_az_stub()

    def stop(self) -> None:
        super().stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _write_az_stub(self) -> None:
        """An `az` that answers `account get-access-token` with this simulator's token (AzureCliCredential)."""
        assert self._dir is not None
        answer = json.dumps(
            {
                "accessToken": self.token,
                "expiresOn": datetime.fromtimestamp(time.time() + 3600).strftime("%Y-%m-%d %H:%M:%S.%f"),
                "expires_on": int(time.time()) + 3600,
                "subscription": SUB_PROD,
                "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "tokenType": "Bearer",
            }
        )
        stub = self._dir / "bin" / "az"
        stub.write_text(
            "#!/bin/sh\n"
            'if [ "$1 $2" != "account get-access-token" ]; then echo "stub az: only get-access-token" >&2; exit 2; fi\n'
            f"cat <<'EOF'\n{answer}\nEOF\n"
        )
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise RuntimeError("simulator is not started")
        return self._dir

    @property
    def ca_bundle(self) -> str:
        return str(self.directory / "ca-bundle.pem")

    @property
    def az_directory(self) -> str:
        return str(self.directory / "bin")

    @property
    def env(self) -> dict[str, str]:
        path = os.environ.get("PATH", "")
        if not path.startswith(self.az_directory + os.pathsep):
            path = self.az_directory + os.pathsep + path
        return {
            "AZURE_COST_SCOPE": "/" + self.scope,
            "AISPEND_AZURE_ENDPOINT": self.url,
            "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential",  # no managed-identity probe, only the stub az
            "PATH": path,
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
            "SSL_CERT_FILE": self.ca_bundle,
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return error_body(status, message)

    # --- what the pipeline must report

    def rows(self, day: date) -> list[CostRow]:
        return [*cost_rows(self.org, day), *(r for r in self.extra_rows if r.usage_date == day)]

    def expected_total_usd(
        self, day: date, services: tuple[str, ...] = (FOUNDRY,), scope: str | None = None
    ) -> Decimal:
        """The day's AI spend in USD: each cell fitted to 12 decimals, as stored, then summed."""
        total = Decimal(0)
        for row in self.rows(day):
            ai = row.service in services or (row.service == COGNITIVE and row.meter_subcategory == "Azure OpenAI")
            if ai and row.in_scope(scope or self.scope):
                total += fitted(self._usd(row.cost_usd))
        return total

    def demo_mapping_rows(self) -> list[dict[str, str]]:
        def rule(dimension: str, value: str, team: str, centre: str, product: str) -> dict[str, str]:
            return {"provider": "azure", "dimension": dimension, "value": value, "team": team} | {
                "cost_centre": centre,
                "product": product,
            }

        return [
            rule("tag", "search", "search", "CC-210", "Search"),
            rule("tag", "support", "support", "CC-220", "Support Assistant"),
            rule("resource_group", "rg-research-models", "research", "CC-500", "Research"),
            rule("subscription_id", SUB_SHARED, "data-platform", "CC-300", "Data Platform"),
        ]

    def _usd(self, cost: Decimal) -> Decimal:
        return cost if self.usd_per_unit == 1 else as_double(float(cost * self.usd_per_unit))

    # --- the query API

    @property
    def routes(self) -> Mapping[str, Route]:
        return {"POST re:/(.+)/providers/Microsoft\\.CostManagement/query": self.query}

    def query(self, request: Request) -> Any:
        header = request.headers.get("Authorization") or ""
        if header != f"Bearer {self.token}":
            raise HttpError(401, "Authentication failed. The 'Authorization' header is missing or invalid.")
        version = request.param("api-version")
        if version not in API_VERSIONS:
            raise HttpError(400, f"The api-version '{version}' is invalid. Supported: {', '.join(API_VERSIONS)}")
        assert request.match is not None
        scope = request.match.group(1).strip("/")
        self._check_scope(scope)
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "Invalid query definition: the body must be a QueryDefinition object")
        first, last, aggregation, grouping, filter_ = self._definition(body)
        digest = hashlib.sha256(request.body).hexdigest()[:16]
        token = request.param("$skiptoken")
        offset = self._offset(token, digest) if token else 0
        if token and self.fail_page is not None and self.fail_page[0] == len(self._pages_served(digest)) + 1:
            _, status, headers = self.fail_page
            self.fail_page = None
            return Reply(error_body(status, f"simulated HTTP {status} on a nextLink page"), status, headers)
        with self._lock:
            self._served.append(digest)
        if not token:
            with self._lock:
                self.queries.append(body)
        columns, rows = self._evaluate(scope, first, last, aggregation, grouping, filter_)
        if not rows:
            return Reply("", 204)
        raw_top = request.param("$top")
        top = int(raw_top) if raw_top and raw_top.isdigit() else DEFAULT_PAGE_ROWS
        size = max(1, min(top, MAX_PAGE_ROWS, self.max_page_size or MAX_PAGE_ROWS))
        page = rows[offset : offset + size]
        next_link = None
        if offset + size < len(rows):
            skip = base64.urlsafe_b64encode(f"{digest}:{offset + size}".encode()).decode()
            next_link = (
                f"{self.url}/{scope}/providers/Microsoft.CostManagement/query?api-version={version}"
                f"&$top={top}&$skiptoken={skip.replace('=', '%3D')}"
            )
        name = str(uuid.uuid4())
        order = list(range(len(columns)))[:: -1 if self.reverse_columns else 1]
        text = (
            "{"
            f'"id": {json.dumps(f"{scope}/providers/Microsoft.CostManagement/query/{name}")}, '
            f'"name": "{name}", "type": "Microsoft.CostManagement/query", "location": null, "sku": null, '
            f'"eTag": null, "properties": {{"nextLink": {json.dumps(next_link)}, '
            f'"columns": {to_json([columns[i] for i in order])}, '
            f'"rows": [{", ".join("[" + ", ".join(_cell(row[i]) for i in order) + "]" for row in page)}]}}'
            "}"
        )
        return Reply(text, 200, {"Content-Type": "application/json; charset=utf-8"})

    def _check_scope(self, scope: str) -> None:
        lowered = scope.lower()
        if lowered in (BILLING_ACCOUNT.lower(), MANAGEMENT_GROUP.lower()):
            return
        parts = lowered.split("/")
        subscriptions = {s.lower() for s in (SUB_PROD, SUB_RESEARCH, SUB_SHARED)}
        if parts[0] == "subscriptions" and len(parts) in (2, 4) and parts[1] in subscriptions:
            groups = {r.resource_group.lower() for r in RESOURCES if r.subscription_id.lower() == parts[1]}
            if len(parts) == 2 or (parts[2] == "resourcegroups" and parts[3] in groups):
                return
        if parts[0] in ("subscriptions", "providers"):
            raise HttpError(404, f"The scope '{scope}' was not found or has no Cost Management data.")
        raise HttpError(400, f"Invalid scope '{scope}'.")

    def _definition(self, body: dict[str, Any]) -> tuple[date, date, list[str], list[tuple[str, str]], Any]:
        if body.get("type") not in ("ActualCost", "Usage"):
            raise HttpError(400, f"Invalid query definition: type '{body.get('type')}' is not served here")
        if body.get("timeframe") != "Custom":
            raise HttpError(400, "Invalid query definition: only a Custom timeframe is served here")
        period = body.get("timePeriod") or {}
        try:
            start = datetime.fromisoformat(str(period["from"]).replace("Z", "+00:00"))
            end = datetime.fromisoformat(str(period["to"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            raise HttpError(400, "Invalid query definition: timePeriod needs 'from' and 'to' date-times") from None
        if end < start:
            raise HttpError(400, "Invalid query definition: 'to' is before 'from'")
        first, last = start.date(), end.date()  # `to` is inclusive: its day is answered
        if (last - first).days > 366 * 3:
            raise HttpError(400, "Invalid query definition: the time period cannot exceed 37 months")
        dataset = body.get("dataset") or {}
        if dataset.get("granularity") != "Daily":
            raise HttpError(400, "Invalid query definition: only Daily granularity is served here")
        # A Daily range longer than a month is shortened to its last month, silently, as the service does.
        month_back = _minus_month(last) + timedelta(days=1)
        first = max(first, month_back)
        aggregations = dataset.get("aggregation") or {}
        if not isinstance(aggregations, dict) or not 1 <= len(aggregations) <= MAX_AGGREGATIONS:
            raise HttpError(400, f"Invalid query definition: 1 to {MAX_AGGREGATIONS} aggregations are allowed")
        names = []
        for alias, spec in aggregations.items():
            if (spec or {}).get("function") != "Sum" or spec.get("name") not in AGGREGATION_COLUMNS:
                raise HttpError(400, f"Invalid query definition: invalid aggregation '{alias}'")
            names.append(spec["name"])
        grouping = []
        for group in dataset.get("grouping") or []:
            kind, name = (group or {}).get("type"), str((group or {}).get("name") or "")
            if kind == "Dimension":
                known = {d.lower(): d for d in DIMENSIONS}
                if name.lower() not in known:
                    valid = ",".join(f"'{d}'" for d in DIMENSIONS)
                    message = f"Invalid dataset grouping: '{name}'; valid values: {valid}"
                    raise HttpError(400, f"Invalid query definition: {message}")
            elif kind != "TagKey" or not name:
                raise HttpError(400, f"Invalid query definition: Invalid grouping type '{kind}'")
            grouping.append((kind, name))
        if len({(k, n.lower()) for k, n in grouping}) != len(grouping):
            raise HttpError(400, "Invalid query definition: duplicate grouping columns")
        if sum(1 for k, _ in grouping if k == "TagKey") > MAX_TAG_GROUPINGS:
            raise HttpError(400, f"Invalid query definition: at most {MAX_TAG_GROUPINGS} tag groupings are allowed")
        if len(grouping) > MAX_GROUPINGS:
            raise HttpError(400, f"Invalid query definition: at most {MAX_GROUPINGS} groupings are allowed")
        filter_ = dataset.get("filter")
        if filter_ is not None:
            _check_filter(filter_)
        return first, last, names, grouping, filter_

    def _offset(self, token: str, digest: str) -> int:
        try:
            owner, _, offset = base64.urlsafe_b64decode(token.encode()).decode().rpartition(":")
            if owner == digest:
                return int(offset)
        except ValueError:
            pass
        raise HttpError(400, "Invalid $skiptoken: POST the same query body to the nextLink")

    def _evaluate(
        self,
        scope: str,
        first: date,
        last: date,
        aggregation: list[str],
        grouping: list[tuple[str, str]],
        filter_: Any,
    ) -> tuple[list[dict[str, str]], list[list[Any]]]:
        groups: dict[tuple[Any, ...], list[Decimal]] = {}
        day = first
        while day <= last:
            for row in self.rows(day):
                filtered = filter_ is not None and not self.ignore_filter
                if not row.in_scope(scope) or (filtered and not _match(row, filter_)):
                    continue
                key: list[Any] = [int(day.strftime("%Y%m%d"))]
                for kind, name in grouping:
                    if kind == "Dimension":
                        key.append(row.dimension(name))
                    else:
                        value = next((v for k, v in row.tags if k.lower() == name.lower()), None)
                        key += [name, value] if value is not None else ["", ""]
                sums = groups.setdefault(tuple(key), [Decimal(0)] * len(aggregation))
                for i, column in enumerate(aggregation):
                    sums[i] += self._aggregate(row, column)
            day += timedelta(days=1)
        columns = [{"name": name, "type": "Number"} for name in aggregation]
        columns.append({"name": "UsageDate", "type": "Number"})
        for kind, name in grouping:
            if kind == "Dimension":
                columns.append({"name": name, "type": "String"})
            else:
                columns += [{"name": "TagKey", "type": "String"}, {"name": "TagValue", "type": "String"}]
        columns.append({"name": "Currency", "type": "String"})
        rows = [[*(_as_double(s) for s in sums), *key, self.billing_currency] for key, sums in sorted(groups.items())]
        return columns, rows

    def _aggregate(self, row: CostRow, column: str) -> Decimal:
        if column in ("CostUSD", "PreTaxCostUSD"):
            return self._usd(row.cost_usd)
        if column == "UsageQuantity":
            return Decimal(1000)
        return row.cost_usd  # Cost / PreTaxCost: in the billing currency


def _as_double(total: Decimal) -> Decimal:
    """A group's sum as the service returns it: a double, unless the cells were already exact text."""
    return total if len(total.as_tuple().digits) > 17 else as_double(float(total))


def _cell(value: Any) -> str:
    """A JSON cell; a tiny amount in exponent form as .NET writes doubles (`1E-07`)."""
    if isinstance(value, Decimal) and value != 0 and abs(value) < Decimal("0.0001"):
        mantissa, _, exponent = format(value.normalize(), "E").partition("E")
        return f"{mantissa}E-{abs(int(exponent)):02d}"
    return to_json(value)


def _minus_month(day: date) -> date:
    year, month = (day.year - 1, 12) if day.month == 1 else (day.year, day.month - 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _check_filter(expression: Any) -> None:
    if not isinstance(expression, dict):
        raise HttpError(400, "Invalid query definition: a filter must be an object")
    for operator in ("and", "or"):
        if operator in expression:
            items = expression[operator]
            if not isinstance(items, list) or len(items) < 2:
                raise HttpError(400, f"Invalid query definition: '{operator}' must have at least 2 expressions")
            for item in items:
                _check_filter(item)
            return
    for kind in ("dimensions", "tags"):
        if kind in expression:
            comparison = expression[kind] or {}
            if comparison.get("operator") != "In" or not comparison.get("values"):
                raise HttpError(400, f"Invalid query definition: '{kind}' needs operator 'In' and values")
            return
    raise HttpError(400, "Invalid query definition: empty filter expression")


def _match(row: CostRow, expression: dict[str, Any]) -> bool:
    if "and" in expression:
        return all(_match(row, item) for item in expression["and"])
    if "or" in expression:
        return any(_match(row, item) for item in expression["or"])
    if "dimensions" in expression:
        comparison = expression["dimensions"]
        return row.dimension(comparison["name"]) in comparison["values"]
    comparison = expression["tags"]
    value = next((v for k, v in row.tags if k.lower() == str(comparison["name"]).lower()), None)
    return value in comparison["values"]


__all__ = ["AzureCostSimulator", "CostRow", "Reply"]
