"""Google Cloud billing export in BigQuery: one parameterised, aggregated query per pull (no Dagster).

The query runs in BigQuery with google-cloud-bigquery and `google.auth.default()` credentials. It keeps
the export's AI services, groups by UTC day of `usage_start_time` (never `export_time`), service,
SKU, project, region, the team label and cost type, and returns each credit of a row's `credits` array
as its own group (type and name), never netted into the cost. Money leaves BigQuery as text:
`cost` and `credits.amount` are FLOAT64 in the export, so each is cast to NUMERIC (rounded half away
from zero to 9 decimal places, per row), summed exactly as NUMERIC and cast to STRING.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aispend_pipeline.core.days import utc_midnight
from aispend_pipeline.core.money import parse_money
from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError

SOURCE = "gcp"
DEFAULT_SERVICES = ("Vertex AI", "Gemini API")
DEFAULT_LABEL_KEY = "team"
SCOPES = ("https://www.googleapis.com/auth/bigquery",)
TABLE_SETTING = "AISPEND_GCP_BILLING_TABLE"
CREDENTIAL_SETTING = "GOOGLE_APPLICATION_CREDENTIALS"
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.:-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_$-]+$")
CHARGE_CATEGORIES = {"regular": "Usage", "tax": "Tax", "adjustment": "Adjustment", "rounding_error": "Adjustment"}
KEY_FIELDS = (
    "usage_date",
    "service",
    "sku_id",
    "sku_description",
    "gcp_project_id",
    "region",
    "billing_account_id",
    "team_tag",
    "currency",
    "cost_type",
    "usage_unit",
    "credit_type",
    "credit_name",
)

QUERY = """
WITH ai AS (
  SELECT
    DATE(usage_start_time, 'UTC') AS usage_date,
    service.description AS service,
    sku.id AS sku_id,
    sku.description AS sku_description,
    project.id AS gcp_project_id,
    location.region AS region,
    billing_account_id,
    (SELECT ANY_VALUE(l.value) FROM UNNEST(labels) AS l WHERE l.key = @label_key) AS team_tag,
    currency,
    cost_type,
    usage.pricing_unit AS usage_unit,
    cost,
    usage.amount_in_pricing_units AS usage_amount,
    credits,
    export_time
  FROM `{table}`
  WHERE usage_start_time >= @start AND usage_start_time < @end
    AND _PARTITIONTIME >= TIMESTAMP_SUB(@start, INTERVAL 1 DAY)
    AND service.description IN UNNEST(@services)
)
SELECT
  usage_date, service, sku_id, sku_description, gcp_project_id, region, billing_account_id, team_tag,
  currency, cost_type, usage_unit,
  CAST(NULL AS STRING) AS credit_type,
  CAST(NULL AS STRING) AS credit_name,
  CAST(SUM(CAST(cost AS NUMERIC)) AS STRING) AS cost,
  CAST(SUM(CAST(usage_amount AS NUMERIC)) AS STRING) AS usage_amount,
  MAX(export_time) AS last_export_time
FROM ai
GROUP BY usage_date, service, sku_id, sku_description, gcp_project_id, region, billing_account_id, team_tag,
  currency, cost_type, usage_unit
UNION ALL
SELECT
  usage_date, service, sku_id, sku_description, gcp_project_id, region, billing_account_id, team_tag,
  currency, cost_type, usage_unit,
  credit.type AS credit_type,
  credit.name AS credit_name,
  CAST(SUM(CAST(credit.amount AS NUMERIC)) AS STRING) AS cost,
  CAST(NULL AS STRING) AS usage_amount,
  MAX(export_time) AS last_export_time
FROM ai, UNNEST(ai.credits) AS credit
GROUP BY usage_date, service, sku_id, sku_description, gcp_project_id, region, billing_account_id, team_tag,
  currency, cost_type, usage_unit, credit_type, credit_name
ORDER BY usage_date, service, sku_id, gcp_project_id, region, team_tag, cost_type, credit_type, credit_name
"""


@dataclass(frozen=True)
class GcpCostLine:
    usage_date: date
    service: str
    charge_category: str  # Usage, Credit, Tax, Adjustment
    cost_type: str | None
    credit_type: str | None
    credit_name: str | None
    gcp_project_id: str | None
    team_tag: str | None
    sku_id: str | None
    sku_description: str | None
    region: str | None
    billing_account_id: str | None
    cost_usd: Decimal
    quantity: Decimal | None
    unit: str | None


def parse_services(extra: str | None) -> tuple[str, ...]:
    """The default AI services plus `AISPEND_GCP_EXTRA_SERVICES` (comma-separated descriptions)."""
    added = [s.strip() for s in (extra or "").split(",") if s.strip()]
    return tuple(dict.fromkeys([*DEFAULT_SERVICES, *added]))


class _RetryBudget:
    """A retry predicate that allows at most `limit` retries in total, so no failure retries for minutes."""

    def __init__(self, predicate: Any, limit: int) -> None:
        self.predicate, self.limit, self.used = predicate, limit, 0

    def __call__(self, exc: Exception) -> bool:
        if self.used >= self.limit or not self.predicate(exc):
            return False
        self.used += 1
        return True


class GcpBillingClient:
    """Reads the billing export named by `table` (`project.dataset.table`)."""

    def __init__(
        self,
        table: str,
        endpoint: str | None = None,
        *,
        label_key: str = DEFAULT_LABEL_KEY,
        services: tuple[str, ...] = DEFAULT_SERVICES,
        credentials: Any = None,
        project: str | None = None,
        page_size: int | None = None,
        max_retries: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 32.0,
        timeout_seconds: float = 120.0,
    ) -> None:
        if not _TABLE_NAME.match(table or ""):
            raise SourcePayloadError(SOURCE, f"{TABLE_SETTING} must name a table as project.dataset.table")
        self.table = table
        self.endpoint = endpoint or None
        self.label_key = label_key or DEFAULT_LABEL_KEY
        self.services = services
        self.credentials = credentials
        self.project = project
        self.page_size = page_size
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.request_count = 0
        self.last_export_time: datetime | None = None

    @property
    def query(self) -> str:
        return QUERY.format(table=self.table)

    def daily_costs(self, start: date, end: date) -> list[GcpCostLine]:
        """Every AI cost and credit line of the UTC days [start, end), in one query."""
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions

        where = f"{start}..{end - timedelta(days=1)}"
        try:
            rows = self._query(start, end)
            return self._lines(rows, start, end)
        except auth_exceptions.DefaultCredentialsError:
            raise SourceAuthError(
                SOURCE,
                f"no Google credentials found: set {CREDENTIAL_SETTING} to a service-account key file, or log in "
                "with `gcloud auth application-default login`",
                where,
            ) from None
        except auth_exceptions.RefreshError as exc:
            raise SourceAuthError(
                SOURCE,
                f"the Google token endpoint refused the credential ({_oauth_reason(exc)}): check the key in "
                f"{CREDENTIAL_SETTING} (or the application default login)",
                where,
            ) from None
        except (api_exceptions.Unauthorized, api_exceptions.Forbidden) as exc:
            if _reason(exc) in ("rateLimitExceeded", "quotaExceeded"):
                raise self._unavailable(exc, where) from None
            raise SourceAuthError(
                SOURCE,
                f"BigQuery answered {exc.code} ({_short(exc)}): the credential in {CREDENTIAL_SETTING} needs "
                f"bigquery.jobs.create on its project and read access to {TABLE_SETTING}",
                where,
            ) from None
        except api_exceptions.NotFound as exc:
            raise SourcePayloadError(
                SOURCE, f"BigQuery answered 404 ({_short(exc)}): check {TABLE_SETTING} ({self.table})", where
            ) from None
        except (api_exceptions.ServerError, api_exceptions.TooManyRequests, api_exceptions.RetryError) as exc:
            raise self._unavailable(exc, where) from None
        except api_exceptions.GoogleAPICallError as exc:
            raise SourcePayloadError(
                SOURCE,
                f"BigQuery answered {exc.code} ({_short(exc)}): is {TABLE_SETTING} a standard billing export table?",
                where,
            ) from None
        except (auth_exceptions.TransportError, OSError) as exc:
            raise SourceUnavailableError(
                SOURCE,
                f"could not reach BigQuery at {self.endpoint or 'its public endpoint'} after {self.max_retries} "
                f"retries ({type(exc).__name__}); check AISPEND_BIGQUERY_ENDPOINT and the network",
                where,
            ) from None

    def _unavailable(self, exc: Any, where: str) -> SourceUnavailableError:
        return SourceUnavailableError(
            SOURCE,
            f"BigQuery still answered {getattr(exc, 'code', None) or type(exc).__name__} after {self.max_retries} "
            f"retries ({_short(exc)}); re-run later",
            where,
        )

    def _query(self, start: date, end: date) -> Any:
        import google.auth
        from google.api_core.client_options import ClientOptions
        from google.auth.transport.requests import AuthorizedSession
        from google.cloud import bigquery
        from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY, DEFAULT_RETRY, _job_should_retry, _should_retry

        credentials, project = self.credentials, self.project
        if credentials is None:
            credentials, default_project = google.auth.default(scopes=list(SCOPES))
            project = project or default_project
        project = project or self.table.split(".")[0]
        client_owner = self

        class CountingSession(AuthorizedSession):
            def request(self, *args: Any, **kwargs: Any) -> Any:
                client_owner.request_count += 1
                return super().request(*args, **kwargs)

        options = ClientOptions(api_endpoint=self.endpoint) if self.endpoint else None
        client = bigquery.Client(
            project=project, credentials=credentials, client_options=options, _http=CountingSession(credentials)
        )
        delay = {"initial": self.backoff_seconds, "maximum": self.max_backoff_seconds, "multiplier": 2.0}
        retry = (
            DEFAULT_RETRY.with_predicate(_RetryBudget(_should_retry, self.max_retries))
            .with_delay(**delay)
            .with_timeout(self.timeout_seconds)
        )
        job_retry = (
            DEFAULT_JOB_RETRY.with_predicate(_RetryBudget(_job_should_retry, self.max_retries))
            .with_delay(**delay)
            .with_timeout(self.timeout_seconds)
        )
        config = bigquery.QueryJobConfig(
            use_legacy_sql=False,
            query_parameters=[
                bigquery.ScalarQueryParameter("start", "TIMESTAMP", utc_midnight(start)),
                bigquery.ScalarQueryParameter("end", "TIMESTAMP", utc_midnight(end)),
                bigquery.ArrayQueryParameter("services", "STRING", list(self.services)),
                bigquery.ScalarQueryParameter("label_key", "STRING", self.label_key),
            ],
        )
        # Rows are read from the REST answers (never the Storage Read API, which ignores the endpoint).
        return client.query_and_wait(
            self.query,
            job_config=config,
            retry=retry,
            job_retry=job_retry,
            api_timeout=self.timeout_seconds,
            wait_timeout=self.timeout_seconds,
            page_size=self.page_size,
        )

    def _lines(self, rows: Any, start: date, end: date) -> list[GcpCostLine]:
        seen: dict[tuple[Any, ...], GcpCostLine] = {}
        for row in rows:
            line, export_time = _line(row, start, end)
            key = tuple(row.get(f) for f in KEY_FIELDS)
            if key in seen:
                # GROUP BY makes each key unique: a repeat is a page served twice, kept once.
                if seen[key] != line:
                    raise SourcePayloadError(
                        SOURCE, f"group {key!r} came twice with different amounts", line.usage_date
                    )
                continue
            seen[key] = line
            if export_time is not None and (self.last_export_time is None or export_time > self.last_export_time):
                self.last_export_time = export_time
        return list(seen.values())


def _field(row: Any, name: str, day: date | None = None) -> Any:
    try:
        return row[name]
    except (KeyError, IndexError):
        raise SourcePayloadError(SOURCE, f"field '{name}' is missing from the query result", day) from None


def _line(row: Any, start: date, end: date) -> tuple[GcpCostLine, datetime | None]:
    day = _field(row, "usage_date")
    if not isinstance(day, date) or not start <= day < end:
        raise SourcePayloadError(SOURCE, f"field 'usage_date' is {day!r}, not a day within {start}..{end}")
    text = {name: _text(_field(row, name, day)) for name in KEY_FIELDS[1:]}
    if not text["service"]:
        raise SourcePayloadError(SOURCE, "field 'service' is empty", day)
    currency = (text["currency"] or "").upper()
    if currency != "USD":
        raise SourcePayloadError(
            SOURCE, f"field 'currency' is {currency!r}: only billing accounts in USD are supported", day
        )
    cost = _money(_field(row, "cost", day), "cost", day)
    raw_quantity = _field(row, "usage_amount", day)
    quantity = None if raw_quantity is None else _money(raw_quantity, "usage_amount", day)
    export_time = _field(row, "last_export_time", day)
    if export_time is not None and not isinstance(export_time, datetime):
        raise SourcePayloadError(SOURCE, "field 'last_export_time' is not a TIMESTAMP", day)
    is_credit = text["credit_type"] is not None or text["credit_name"] is not None
    category = "Credit" if is_credit else CHARGE_CATEGORIES.get(text["cost_type"] or "regular", "Usage")
    line = GcpCostLine(
        usage_date=day,
        service=text["service"] or "",
        charge_category=category,
        cost_type=text["cost_type"],
        credit_type=text["credit_type"],
        credit_name=text["credit_name"],
        gcp_project_id=text["gcp_project_id"],
        team_tag=text["team_tag"],
        sku_id=text["sku_id"],
        sku_description=text["sku_description"],
        region=text["region"],
        billing_account_id=text["billing_account_id"],
        cost_usd=cost,
        quantity=None if is_credit else quantity,
        unit=None if is_credit else text["usage_unit"],
    )
    return line, (export_time.astimezone(UTC) if export_time is not None else None)


def _money(value: Any, name: str, day: date) -> Decimal:
    if not isinstance(value, str):
        raise SourcePayloadError(SOURCE, f"field '{name}' is not NUMERIC text (the query casts it to STRING)", day)
    try:
        return parse_money(value)
    except ValueError as exc:
        raise SourcePayloadError(SOURCE, f"field '{name}': {exc}", day) from None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _reason(exc: Any) -> str | None:
    try:
        return exc.errors[0]["reason"]
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def _short(exc: Any) -> str:
    """The provider's reason and message, without URLs, shortened: never the whole body."""
    try:
        message = str(exc.errors[0].get("message") or "")
    except (AttributeError, IndexError, KeyError, TypeError):
        message = ""
    message = re.sub(r"https?://\S+", "", message or getattr(exc, "message", "") or type(exc).__name__)
    reason = _reason(exc)
    text = " ".join(message.split())[:160]
    return f"{reason}: {text}" if reason else text


def _oauth_reason(exc: Exception) -> str:
    """The OAuth error code (e.g. invalid_grant) only: the description may quote the request."""
    match = re.search(r"\b(invalid_grant|invalid_client|unauthorized_client|invalid_scope|access_denied)\b", str(exc))
    return match.group(1) if match else type(exc).__name__
