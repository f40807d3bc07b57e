"""The BigQuery REST calls of google-cloud-bigquery, over a synthetic Cloud Billing export table.

It serves what the real client sends and expects: jobs.query, jobs.insert (echoing the client's jobId),
jobs.get and jobs.getQueryResults (schema on `maxResults=0`, `fields=` partial answers, `pageToken`
pages), cells as strings with TIMESTAMP as int64 microseconds when `formatOptions.useInt64Timestamp` is
asked, BigQuery's error envelope, and a Bearer token issued by its own OAuth token endpoint for a
service-account JWT it verifies with the key it generated (the key file's `token_uri` points there).

It evaluates the client's aggregated query itself: it recognises the query's shape (the table, the
TIMESTAMP bounds on `usage_start_time`, the services list, NUMERIC sums, the credits unnested), reads
the named parameters and computes the groups from its own export rows: hourly rows of AI and non-AI
services, rows exported days after their usage, credits arrays of one or two credits, resource labels.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aispend_pipeline.simulators.base import HttpSimulator
from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.simulators.server import HttpError, Reply, Request, Route, SimServer

TABLE = "aispend-billing.billing_export.gcp_billing_export_v1_01D0BC_3978F2_824033"
JOB_PROJECT = "aispend-sim"
BILLING_ACCOUNT = "01D0BC-3978F2-824033"
SERVICE_ACCOUNT = f"aispend-reader@{JOB_PROJECT}.iam.gserviceaccount.com"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AI_SERVICES = ("Vertex AI", "Gemini API")
NUMERIC = Decimal("0.000000001")
MAX_ROWS_PER_PAGE = 100_000
HOURS = (1, 7, 13, 23)  # usage hours of each line; the 23:00 row ends on the next day

SERVICE_IDS = {
    "Vertex AI": "C7E2-9256-1C43",
    "Gemini API": "AEFD-7695-64FA",
    "Claude Sonnet 4.5": "6F81-5844-456A",
    "Compute Engine": "6F81-5844-456B",
    "Cloud Storage": "95FF-2EF5-5EA1",
}
# sku id -> (service, SKU description, USD per 1M tokens or None, region)
SKUS: dict[str, tuple[str, str, float | None, str | None]] = {
    "1E4B-7D38-5A01": ("Vertex AI", "Gemini 2.5 Pro Text Input - Predictions", 1.25, "us-central1"),
    "1E4B-7D38-5A02": ("Vertex AI", "Gemini 2.5 Pro Text Output - Predictions", 10.0, "us-central1"),
    "1E4B-7D38-5A03": ("Vertex AI", "Gemini 2.5 Flash Text Input - Predictions", 0.30, "europe-west4"),
    "1E4B-7D38-5A04": ("Vertex AI", "Gemini 2.5 Flash Text Output - Predictions", 2.50, "europe-west4"),
    "1E4B-7D38-5A05": ("Vertex AI", "Text Embedding 005 Input - Predictions", 0.10, "us-central1"),
    "2B7C-11AA-0F01": ("Gemini API", "Gemini 2.5 Flash Input Tokens", 0.30, None),
    "2B7C-11AA-0F02": ("Gemini API", "Gemini 2.5 Flash Output Tokens", 2.50, None),
    "2B7C-11AA-0F03": ("Gemini API", "Gemini 2.5 Flash Cached Input Tokens", 0.075, None),
    "7A10-AAAA-0001": ("Claude Sonnet 4.5", "Claude Sonnet 4.5 Output Tokens", 15.0, "us-east5"),
    "CP-N2-CORE": ("Compute Engine", "N2 Instance Core running in Americas", None, "us-central1"),
    "CS-STD-US": ("Cloud Storage", "Standard Storage US Multi-region", None, "us"),
}
_PRO, _FLASH = ("1E4B-7D38-5A01", "1E4B-7D38-5A02"), ("1E4B-7D38-5A03", "1E4B-7D38-5A04")
_STUDIO = ("2B7C-11AA-0F01", "2B7C-11AA-0F02", "2B7C-11AA-0F03")
_NON_AI = ("CP-N2-CORE", "CS-STD-US")
# project -> (USD on a weekday, chance a line has usage in an hour slot, labels, SKUs with their shares)
PROJECTS: dict[str, tuple[float, float, tuple[tuple[str, str], ...], dict[str, float]]] = {
    "search-ranking-prod": (
        60.0, 1.0, (("team", "search"), ("env", "prod")),
        {_FLASH[0]: 0.35, _FLASH[1]: 0.45, "1E4B-7D38-5A05": 0.20, **dict.fromkeys(_NON_AI, 0.5)},
    ),
    "support-assist-prod": (
        45.0, 1.0, (("team", "support"),), {_PRO[0]: 0.3, _PRO[1]: 0.5, _STUDIO[0]: 0.1, _STUDIO[1]: 0.1},
    ),
    "research-sandbox": (
        35.0, 0.85, (("env", "dev"),), {_PRO[0]: 0.4, _PRO[1]: 0.6, "7A10-AAAA-0001": 0.5, _NON_AI[0]: 0.4},
    ),
    "data-platform-etl": (
        25.0, 0.95, (), {_STUDIO[0]: 0.4, _STUDIO[1]: 0.4, _STUDIO[2]: 0.2, "1E4B-7D38-5A05": 0.3},
    ),
}  # fmt: skip

_KEY: dict[str, Any] = {}
_KEY_LOCK = threading.Lock()


def _private_key() -> Any:
    """One RSA key per process (generating one per simulator would slow every test down)."""
    with _KEY_LOCK:
        if "key" not in _KEY:
            from cryptography.hazmat.primitives.asymmetric import rsa

            _KEY["key"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _KEY["key"]


def private_key_pem(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def service_account_info(token_uri: str, key: Any, key_id: str = "sim-key-1") -> dict[str, str]:
    """A service-account key file's content (what `GOOGLE_APPLICATION_CREDENTIALS` names)."""
    return {
        "type": "service_account",
        "project_id": JOB_PROJECT,
        "private_key_id": key_id,
        "private_key": private_key_pem(key),
        "client_email": SERVICE_ACCOUNT,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }


def numeric(value: float) -> Decimal:
    """BigQuery's CAST(FLOAT64 AS NUMERIC): the float's exact value rounded half away from zero to 9 places."""
    return Decimal(value).quantize(NUMERIC, rounding=ROUND_HALF_UP)


def numeric_text(value: Decimal) -> str:
    """CAST(NUMERIC AS STRING): no trailing zeros, no exponent."""
    text = format(value.normalize(), "f")
    return "0" if value == 0 else text


@dataclass(frozen=True)
class Credit:
    name: str
    amount: float
    full_name: str | None
    id: str
    type: str


@dataclass(frozen=True)
class ExportRow:
    """One row of the standard usage cost export (the columns the query reads)."""

    service: str
    sku_id: str
    sku_description: str
    usage_start_time: datetime
    usage_end_time: datetime
    project_id: str
    labels: tuple[tuple[str, str], ...]
    region: str | None
    export_time: datetime
    cost: float  # FLOAT64, before credits
    currency: str
    cost_type: str
    usage_amount: float | None  # usage.amount_in_pricing_units
    pricing_unit: str | None
    credits: tuple[Credit, ...]

    @property
    def usage_date(self) -> date:
        return self.usage_start_time.date()


def export_rows(org: SyntheticOrg, day: date) -> list[ExportRow]:
    """The export rows whose usage starts on `day` (whatever their export_time)."""
    rows = []
    for project, (budget, activity, labels, skus) in PROJECTS.items():
        shares = sum(skus.values())
        for sku_id, share in skus.items():
            service, description, price, region = SKUS[sku_id]
            for hour in HOURS:
                key = f"{project}|{sku_id}|{hour}"
                amount = org._amount("gcp", day, key, budget * share / shares / len(HOURS), activity)
                if amount is None:
                    continue
                rng = random.Random(f"{org.seed}|gcp-export|{day.isoformat()}|{key}")
                cost = float(amount) / 3 if hour == 13 else float(amount)  # float artefacts, as exported
                start = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
                late = rng.random() < 0.2
                exported = start + (timedelta(days=rng.randint(1, 3), hours=2) if late else timedelta(hours=4))
                row_labels = labels if hour != 23 else tuple(lv for lv in labels if lv[0] != "team")
                rows.append(
                    ExportRow(
                        service=service,
                        sku_id=sku_id,
                        sku_description=description,
                        usage_start_time=start,
                        usage_end_time=start + timedelta(hours=1),
                        project_id=project,
                        labels=row_labels,
                        region=region,
                        export_time=exported,
                        cost=cost,
                        currency="USD",
                        cost_type="regular",
                        usage_amount=None if price is None else cost / price * 1_000_000,
                        pricing_unit="count" if price is not None else "hour",
                        credits=_credits(project, service, hour, cost),
                    )
                )
    return rows


def _credits(project: str, service: str, hour: int, cost: float) -> tuple[Credit, ...]:
    if project == "research-sandbox" and service in AI_SERVICES:
        return (Credit("Vertex AI trial credit", -cost * 0.25, None, "PROMOTION-7f3a", "PROMOTION"),)
    if service == "Gemini API":
        free = Credit("Free Tier", -min(cost, 0.5), None, "FREE_TIER-0001", "FREE_TIER")
        if hour == 7:
            return (free, Credit("Spending based discount", -cost * 0.05, "Spend discount", "DISCOUNT-9", "DISCOUNT"))
        return (free,)
    return ()


# The client's query, as the simulator recognises it: these fragments must be there (whitespace folded).
REQUIRED_FRAGMENTS = (
    "usage_start_time >= @start",
    "usage_start_time < @end",
    "service.description IN UNNEST(@services)",
    "DATE(usage_start_time, 'UTC')",
    "SUM(CAST(cost AS NUMERIC))",
    "UNNEST(ai.credits) AS credit",
    "SUM(CAST(credit.amount AS NUMERIC))",
    "l.key = @label_key",
    "GROUP BY",
)
FORBIDDEN_FRAGMENTS = ("DATE(export_time", "export_time >=", "export_time <", "SUM(cost)")
PARAMETER_TYPES = {"start": "TIMESTAMP", "end": "TIMESTAMP", "services": "ARRAY<STRING>", "label_key": "STRING"}

FIELDS = (
    ("usage_date", "DATE"),
    ("service", "STRING"),
    ("sku_id", "STRING"),
    ("sku_description", "STRING"),
    ("gcp_project_id", "STRING"),
    ("region", "STRING"),
    ("billing_account_id", "STRING"),
    ("team_tag", "STRING"),
    ("currency", "STRING"),
    ("cost_type", "STRING"),
    ("usage_unit", "STRING"),
    ("credit_type", "STRING"),
    ("credit_name", "STRING"),
    ("cost", "STRING"),
    ("usage_amount", "STRING"),
    ("last_export_time", "TIMESTAMP"),
)

_STATUS = {
    400: ("INVALID_ARGUMENT", "invalidQuery"),
    401: ("UNAUTHENTICATED", "authError"),
    403: ("PERMISSION_DENIED", "accessDenied"),
    404: ("NOT_FOUND", "notFound"),
    409: ("ALREADY_EXISTS", "duplicate"),
    429: ("RESOURCE_EXHAUSTED", "rateLimitExceeded"),
    500: ("INTERNAL", "internalError"),
    503: ("UNAVAILABLE", "backendError"),
}


def error_body(status: int, message: str, reason: str | None = None) -> dict[str, Any]:
    """BigQuery's error envelope (google-api-core maps `errors[0].reason` to retry decisions)."""
    name, default_reason = _STATUS.get(status, ("UNKNOWN", "backendError" if status >= 500 else "invalid"))
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason or default_reason}],
            "status": name,
        }
    }


@dataclass
class _Job:
    project: str
    job_id: str
    location: str
    configuration: dict[str, Any]
    rows: list[dict[str, Any]]
    polls_pending: int = 0


class BigQueryBillingSimulator(HttpSimulator):
    """BigQuery over the synthetic billing export; `as_of` hides rows exported after it (late rows)."""

    source = "gcp"

    def __init__(self, org: SyntheticOrg, *, max_page_size: int | None = None, **server_options: Any) -> None:
        super().__init__(org, max_page_size=max_page_size, **server_options)
        self.token_server = SimServer({"POST /token": self.token}, _token_error)
        self.key = _private_key()
        self.as_of: datetime | None = None  # None: every row is exported already
        self.pending_polls = 0  # getQueryResults answers jobComplete=false this many times per job
        self.repeat_rows_across_pages = False  # a faulty server repeating a page's last row on the next
        self.cell_overrides: dict[str, Any] = {}  # field -> raw cell value served in every row
        self.dropped_fields: set[str] = set()
        self.queries: list[dict[str, Any]] = []  # the parameters of each query received
        self._tokens: set[str] = set()
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._dir: Path | None = None

    # --- lifecycle and settings

    def start(self) -> None:
        self.token_server.start()
        super().start()
        self._dir = Path(tempfile.mkdtemp(prefix="aispend-gcp-sim-"))
        self.key_file.write_text(json.dumps(service_account_info(self.token_uri, self.key)))

    def stop(self) -> None:
        super().stop()
        self.token_server.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def token_uri(self) -> str:
        return f"{self.token_server.url}/token"

    @property
    def key_file(self) -> Path:
        if self._dir is None:
            raise RuntimeError("simulator is not started")
        return self._dir / "service-account.json"

    @property
    def env(self) -> dict[str, str]:
        return {
            "AISPEND_GCP_BILLING_TABLE": TABLE,
            "AISPEND_BIGQUERY_ENDPOINT": self.url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(self.key_file),
            "NO_GCE_CHECK": "true",
        }

    def token_request_count(self) -> int:
        return self.token_server.request_count()

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return error_body(status, message)

    # --- what the pipeline must report

    def visible_rows(self, day: date) -> list[ExportRow]:
        return [r for r in export_rows(self.org, day) if self.as_of is None or r.export_time <= self.as_of]

    def expected_total_usd(self, day: date, services: tuple[str, ...] = AI_SERVICES) -> Decimal:
        """Cost plus credits of the day's AI rows, each FLOAT64 amount rounded to NUMERIC first."""
        total = Decimal(0)
        for row in self.visible_rows(day):
            if row.service in services:
                total += numeric(row.cost) + sum((numeric(c.amount) for c in row.credits), Decimal(0))
        return total

    def demo_mapping_rows(self) -> list[dict[str, str]]:
        def rule(dimension: str, value: str, team: str, centre: str, product: str) -> dict[str, str]:
            return {"provider": "gcp", "dimension": dimension, "value": value, "team": team} | {
                "cost_centre": centre,
                "product": product,
            }

        return [
            rule("tag", "search", "search", "CC-210", "Search"),
            rule("tag", "support", "support", "CC-220", "Support Assistant"),
            rule("gcp_project_id", "search-ranking-prod", "search", "CC-210", "Search"),
            rule("gcp_project_id", "research-sandbox", "research", "CC-500", "Research"),
            rule("gcp_project_id", "data-platform-etl", "data-platform", "CC-300", "Data Platform"),
        ]

    # --- OAuth token endpoint

    def token(self, request: Request) -> dict[str, Any]:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode(errors="replace")).items()}
        if form.get("grant_type") != JWT_GRANT:
            raise HttpError(400, "unsupported_grant_type")
        claims = self._verified_claims(form.get("assertion") or "")
        scopes = str(claims.get("scope") or "").split()
        if not any(s.endswith(("/auth/bigquery", "/auth/cloud-platform")) for s in scopes):
            raise HttpError(400, "Invalid OAuth scope or ID token audience provided.")
        token = "ya29.sim-" + secrets.token_hex(16)
        with self._lock:
            self._tokens.add(token)
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _verified_claims(self, assertion: str) -> dict[str, Any]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            header_b64, payload_b64, signature_b64 = assertion.split(".")
            header, claims = json.loads(_b64decode(header_b64)), json.loads(_b64decode(payload_b64))
            signature = _b64decode(signature_b64)
        except ValueError:
            raise HttpError(400, "Invalid JWT: malformed assertion") from None
        if header.get("alg") != "RS256":
            raise HttpError(400, "Invalid JWT: alg must be RS256")
        try:
            signed = f"{header_b64}.{payload_b64}".encode()
            self.key.public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise HttpError(400, "Invalid JWT Signature.") from None
        if claims.get("iss") != SERVICE_ACCOUNT:
            raise HttpError(400, "Invalid JWT: unknown issuer")
        if claims.get("aud") not in (GOOGLE_TOKEN_URI, self.token_uri):
            raise HttpError(400, "Invalid JWT: audience is not the token endpoint")
        if not int(claims.get("iat", 0)) - 300 <= time.time() < int(claims.get("exp", 0)):
            raise HttpError(400, "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe")
        return claims

    # --- BigQuery REST

    @property
    def routes(self) -> Mapping[str, Route]:
        prefix = "re:/bigquery/v2/projects/([^/]+)"
        return {
            f"POST {prefix}/queries": self.jobs_query,
            f"GET {prefix}/queries/([^/]+)": self.get_query_results,
            f"POST {prefix}/jobs": self.jobs_insert,
            f"GET {prefix}/jobs/([^/]+)": self.jobs_get,
        }

    def _authorise(self, request: Request) -> None:
        header = request.headers.get("Authorization") or ""
        with self._lock:
            known = header.startswith("Bearer ") and header[7:] in self._tokens
        if not known:
            raise HttpError(401, "Request is missing required authentication credential.")

    def jobs_query(self, request: Request) -> Any:
        self._authorise(request)
        project = _group(request, 1)
        body = request.json() or {}
        job = self._run(project, "job_" + secrets.token_hex(12), body, body.get("location"))
        if job.polls_pending > 0:  # not done within timeoutMs: the client polls getQueryResults
            reference = {"projectId": job.project, "jobId": job.job_id, "location": job.location}
            return {"kind": "bigquery#queryResponse", "jobReference": reference, "jobComplete": False}
        limit = body.get("maxResults")
        int64 = bool((body.get("formatOptions") or {}).get("useInt64Timestamp"))
        answer = {"kind": "bigquery#queryResponse", **self._results(job, 0, limit, int64)}
        return answer | {"totalBytesProcessed": "1048576", "cacheHit": False, "queryId": job.job_id}

    def jobs_insert(self, request: Request) -> Any:
        self._authorise(request)
        project = _group(request, 1)
        body = request.json() or {}
        reference = body.get("jobReference") or {}
        job_id = reference.get("jobId") or "job_" + secrets.token_hex(12)
        with self._lock:
            if job_id in self._jobs:
                raise HttpError(409, f"Already Exists: Job {project}:US.{job_id}")
        query = (body.get("configuration") or {}).get("query") or {}
        job = self._run(project, job_id, query, reference.get("location"), configuration=body.get("configuration"))
        return self._job_resource(job, "RUNNING" if job.polls_pending else "DONE")

    def jobs_get(self, request: Request) -> Any:
        self._authorise(request)
        job = self._job(request)
        with self._lock:
            running = job.polls_pending > 0
            job.polls_pending = max(job.polls_pending - 1, 0)
        return self._job_resource(job, "RUNNING" if running else "DONE")

    def get_query_results(self, request: Request) -> Any:
        self._authorise(request)
        job = self._job(request)
        with self._lock:
            if job.polls_pending > 0:
                job.polls_pending -= 1
                pending = True
            else:
                pending = False
        reference = {"projectId": job.project, "jobId": job.job_id, "location": job.location}
        if pending:
            return {"kind": "bigquery#getQueryResultsResponse", "jobReference": reference, "jobComplete": False}
        offset = 0
        token = request.param("pageToken")
        if token:
            offset = _decode_token(token, job.job_id)
        elif request.param("startIndex"):
            offset = int(request.param("startIndex") or 0)
        raw_limit = request.param("maxResults")
        limit = int(raw_limit) if raw_limit is not None and raw_limit.isdigit() else None
        int64 = (request.param("formatOptions.useInt64Timestamp") or "").lower() == "true"
        answer = {"kind": "bigquery#getQueryResultsResponse", **self._results(job, offset, limit, int64)}
        fields = request.param("fields")
        if fields:
            answer = {k: v for k, v in answer.items() if k in fields.split(",")}
        return answer

    def _job(self, request: Request) -> _Job:
        project, job_id = _group(request, 1), _group(request, 2)
        with self._lock:
            job = self._jobs.get(job_id)
        location = request.param("location")
        if job is None or job.project != project or (location and location != job.location):
            raise HttpError(404, f"Not found: Job {project}:{location or 'US'}.{job_id}")
        return job

    def _job_resource(self, job: _Job, state: str = "DONE") -> dict[str, Any]:
        now = str(int(time.time() * 1000))
        return {
            "kind": "bigquery#job",
            "id": f"{job.project}:{job.location}.{job.job_id}",
            "jobReference": {"projectId": job.project, "jobId": job.job_id, "location": job.location},
            "configuration": job.configuration,
            "status": {"state": state},
            "statistics": {
                "creationTime": now,
                "startTime": now,
                "endTime": now,
                "query": {"totalBytesProcessed": "1048576", "statementType": "SELECT", "cacheHit": False},
            },
            "user_email": SERVICE_ACCOUNT,
        }

    def _results(self, job: _Job, offset: int, limit: int | None, int64: bool) -> dict[str, Any]:
        size = min(limit if limit is not None else MAX_ROWS_PER_PAGE, self.max_page_size or MAX_ROWS_PER_PAGE)
        first = max(offset - 1, 0) if self.repeat_rows_across_pages and offset > 0 else offset
        page = job.rows[first : offset + size]
        answer: dict[str, Any] = {
            "jobReference": {"projectId": job.project, "jobId": job.job_id, "location": job.location},
            "jobComplete": True,
            "schema": {
                "fields": [
                    {"name": n, "type": t, "mode": "NULLABLE"} for n, t in FIELDS if n not in self.dropped_fields
                ]
            },
            "totalRows": str(len(job.rows)),
        }
        if size > 0:
            answer["rows"] = [self._encode(row, int64) for row in page]
        if size > 0 and offset + size < len(job.rows):
            answer["pageToken"] = base64.urlsafe_b64encode(f"{job.job_id}:{offset + size}".encode()).decode()
        return answer

    def _encode(self, row: dict[str, Any], int64: bool) -> dict[str, Any]:
        cells = []
        for name, _kind in FIELDS:
            if name in self.dropped_fields:
                continue
            value = self.cell_overrides.get(name, row[name]) if name in self.cell_overrides else row[name]
            if isinstance(value, datetime):
                micros = int(value.timestamp()) * 1_000_000 + value.microsecond
                value = str(micros) if int64 else repr(micros / 1e6)
            elif isinstance(value, date):
                value = value.isoformat()
            cells.append({"v": value})
        return {"f": cells}

    # --- evaluating the query

    def _run(
        self,
        project: str,
        job_id: str,
        query: dict[str, Any],
        location: str | None,
        configuration: dict[str, Any] | None = None,
    ) -> _Job:
        if location not in (None, "US"):
            raise HttpError(404, f"Not found: Dataset {TABLE.rsplit('.', 1)[0]} was not found in location {location}")
        params = self._parameters(query)
        rows = self._evaluate(str(query.get("query") or ""), params)
        job = _Job(project, job_id, "US", configuration or {"query": query}, rows, self.pending_polls)
        with self._lock:
            self._jobs[job_id] = job
            self.queries.append(params)
        return job

    def _parameters(self, query: dict[str, Any]) -> dict[str, Any]:
        if query.get("useLegacySql") is not False:
            raise HttpError(400, "Query parameters are not supported with legacy SQL: set useLegacySql to false")
        if query.get("parameterMode") != "NAMED":
            raise HttpError(400, "Query uses named parameters but parameterMode is not NAMED")
        found: dict[str, Any] = {}
        for param in query.get("queryParameters") or []:
            name, kind = param.get("name"), param.get("parameterType") or {}
            type_name = kind.get("type", "")
            if type_name == "ARRAY":
                type_name = f"ARRAY<{(kind.get('arrayType') or {}).get('type')}>"
            expected = PARAMETER_TYPES.get(name)
            if expected is None:
                raise HttpError(400, f"Query parameter '{name}' is not used in the query")
            if type_name != expected:
                # e.g. a DATE compared with the TIMESTAMP column usage_start_time
                raise HttpError(
                    400, f"No matching signature for operator >= for argument types: TIMESTAMP, {type_name}"
                )
            value = param.get("parameterValue") or {}
            if type_name == "TIMESTAMP":
                found[name] = _timestamp(str(value.get("value")))
            elif type_name.startswith("ARRAY"):
                found[name] = tuple(str(v.get("value")) for v in value.get("arrayValues") or [])
            else:
                found[name] = value.get("value")
        missing = sorted(set(PARAMETER_TYPES) - set(found))
        if missing:
            raise HttpError(400, f"Query parameter '{missing[0]}' not found")
        return found

    def _evaluate(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        text = " ".join(sql.split())
        if f"FROM `{TABLE}`" not in text:
            raise HttpError(404, "Not found: Table named in the query was not found in location US")
        absent = [f for f in REQUIRED_FRAGMENTS if f not in text]
        present = [f for f in FORBIDDEN_FRAGMENTS if f in text]
        if absent or present:
            raise HttpError(400, f"the simulator does not recognise this query ({(absent + present)[0]!r})")
        start, end = params["start"], params["end"]
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        day = start.date()
        while day <= end.date():
            for row in self.visible_rows(day):
                if not (start <= row.usage_start_time < end and row.service in params["services"]):
                    continue
                team = next((v for k, v in row.labels if k == params["label_key"]), None)
                base = {
                    "usage_date": row.usage_date,
                    "service": row.service,
                    "sku_id": row.sku_id,
                    "sku_description": row.sku_description,
                    "gcp_project_id": row.project_id,
                    "region": row.region,
                    "billing_account_id": BILLING_ACCOUNT,
                    "team_tag": team,
                    "currency": row.currency,
                    "cost_type": row.cost_type,
                    "usage_unit": row.pricing_unit,
                }
                usage = None if row.usage_amount is None else numeric(row.usage_amount)
                _add(groups, base | {"credit_type": None, "credit_name": None}, numeric(row.cost), usage, row)
                for credit in row.credits:
                    credit_base = base | {"credit_type": credit.type, "credit_name": credit.name}
                    _add(groups, credit_base, numeric(credit.amount), None, row)
            day += timedelta(days=1)
        out = []
        for group in groups.values():
            group["cost"] = numeric_text(group["cost"])
            group["usage_amount"] = None if group["usage_amount"] is None else numeric_text(group["usage_amount"])
            out.append(group)
        order = [n for n, _ in FIELDS[:13]]
        return sorted(out, key=lambda g: tuple((g[n] is not None, str(g[n] or "")) for n in order))


def _add(
    groups: dict[tuple[Any, ...], dict[str, Any]],
    key_fields: dict[str, Any],
    cost: Decimal,
    usage: Decimal | None,
    row: ExportRow,
) -> None:
    key = tuple(key_fields.values())
    group = groups.setdefault(key, key_fields | {"cost": Decimal(0), "usage_amount": None, "last_export_time": None})
    group["cost"] += cost
    if usage is not None:
        group["usage_amount"] = (group["usage_amount"] or Decimal(0)) + usage
    if group["last_export_time"] is None or row.export_time > group["last_export_time"]:
        group["last_export_time"] = row.export_time


def _group(request: Request, index: int) -> str:
    assert request.match is not None
    return request.match.group(index)


def _timestamp(raw: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise HttpError(400, f"Invalid TIMESTAMP query parameter value: {raw!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _decode_token(token: str, job_id: str) -> int:
    try:
        owner, _, offset = base64.urlsafe_b64decode(token.encode()).decode().rpartition(":")
        if owner == job_id:
            return int(offset)
    except ValueError:
        pass
    raise HttpError(400, "Invalid page token")


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _token_error(status: int, message: str) -> dict[str, str]:
    """Google's OAuth error shape (`invalid_grant` and a description)."""
    return {"error": "invalid_grant" if status == 400 else "internal_failure", "error_description": message}


__all__ = ["BigQueryBillingSimulator", "Reply"]
