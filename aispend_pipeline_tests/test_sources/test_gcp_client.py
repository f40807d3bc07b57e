"""The BigQuery billing-export client over real HTTP against the simulator (google-auth and BigQuery REST)."""

from __future__ import annotations

import json
import socket
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError
from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.sources.gcp.client import GcpBillingClient, GcpCostLine, parse_services
from aispend_pipeline.sources.gcp.simulator import (
    AI_SERVICES,
    TABLE,
    BigQueryBillingSimulator,
    error_body,
    export_rows,
    numeric,
    service_account_info,
)

START, END = date(2026, 10, 1), date(2026, 11, 1)  # 31 days
FAST = {"max_retries": 2, "backoff_seconds": 0, "timeout_seconds": 10}


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[BigQueryBillingSimulator]:
    simulator = BigQueryBillingSimulator(SyntheticOrg(seed=7))
    simulator.start()
    for name, value in simulator.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    yield simulator
    simulator.stop()


def client(sim: BigQueryBillingSimulator, **options: Any) -> GcpBillingClient:
    return GcpBillingClient(TABLE, sim.url, **(FAST | options))


def totals(lines: list[GcpCostLine]) -> dict[date, Decimal]:
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    for line in lines:
        by_day[line.usage_date] += line.cost_usd
    return dict(by_day)


def test_a_month_is_one_query_and_matches_the_export_exactly(sim: BigQueryBillingSimulator) -> None:
    reader = client(sim)
    lines = reader.daily_costs(START, END)

    assert reader.request_count == 1 and sim.request_count() == 1, "one jobs.query answers the whole month"
    assert sim.token_request_count() == 1
    by_day = totals(lines)
    assert sorted(by_day) == [START + timedelta(days=i) for i in range(31)]
    for day, total in by_day.items():
        assert total == sim.expected_total_usd(day), day
    assert sum(by_day.values()) > Decimal(1000)
    (params,) = sim.queries
    assert params["start"] == datetime(2026, 10, 1, tzinfo=UTC) and params["end"] == datetime(2026, 11, 1, tzinfo=UTC)
    assert params["services"] == AI_SERVICES and params["label_key"] == "team"
    assert reader.last_export_time is not None and reader.last_export_time.tzinfo is not None


def test_non_ai_services_are_excluded_and_extra_services_added(sim: BigQueryBillingSimulator) -> None:
    day = date(2026, 10, 6)
    services = {row.service for row in export_rows(sim.org, day)}
    assert {"Compute Engine", "Cloud Storage", "Claude Sonnet 4.5"} <= services, "the export has non-AI spend"

    lines = client(sim).daily_costs(day, day + timedelta(days=1))
    assert {line.service for line in lines} == {"Vertex AI", "Gemini API"}

    extra = parse_services(" Claude Sonnet 4.5 ,")
    with_claude = client(sim, services=extra).daily_costs(day, day + timedelta(days=1))
    assert "Claude Sonnet 4.5" in {line.service for line in with_claude}
    assert totals(with_claude)[day] == sim.expected_total_usd(day, services=extra) > totals(lines)[day]


def test_each_credit_is_its_own_negative_line_and_labels_become_team_tags(sim: BigQueryBillingSimulator) -> None:
    day = date(2026, 10, 7)
    lines = client(sim).daily_costs(day, day + timedelta(days=1))

    credits = [line for line in lines if line.charge_category == "Credit"]
    assert {c.credit_type for c in credits} == {"PROMOTION", "FREE_TIER", "DISCOUNT"}
    assert all(c.cost_usd < 0 and c.quantity is None for c in credits)
    usage = [line for line in lines if line.charge_category == "Usage"]
    assert all(u.cost_usd > 0 for u in usage)
    rows = [r for r in export_rows(sim.org, day) if r.service in AI_SERVICES]
    gross = sum((numeric(r.cost) for r in rows), Decimal(0))
    assert sum((u.cost_usd for u in usage), Decimal(0)) == gross, "credits are not netted into the cost"
    assert {u.team_tag for u in usage} == {"search", "support", None}
    assert {u.gcp_project_id for u in usage if u.team_tag is None} >= {"data-platform-etl", "research-sandbox"}
    assert {u.region for u in usage} >= {"us-central1", "europe-west4", None}
    assert all(u.sku_id and u.sku_description and u.unit == "count" for u in usage)


def test_float_costs_are_rounded_to_numeric_per_row_then_summed_exactly(sim: BigQueryBillingSimulator) -> None:
    day = date(2026, 10, 8)
    lines = client(sim).daily_costs(day, day + timedelta(days=1))

    assert any(len(str(line.cost_usd).split(".")[-1]) == 9 for line in lines), "a /3 cost keeps 9 decimals"
    assert all(-line.cost_usd.as_tuple().exponent <= 9 for line in lines)  # type: ignore[operator]
    assert numeric(0.1 + 0.2) == Decimal("0.300000000")


def test_the_label_key_setting_picks_the_label(sim: BigQueryBillingSimulator) -> None:
    day = date(2026, 10, 9)
    lines = client(sim, label_key="env").daily_costs(day, day + timedelta(days=1))

    assert {line.team_tag for line in lines} == {"prod", "dev", None}
    assert sim.queries[-1]["label_key"] == "env"


def test_day_is_usage_start_not_export_time_and_late_rows_restate(sim: BigQueryBillingSimulator) -> None:
    day = date(2026, 10, 12)
    rows = [r for r in export_rows(sim.org, day) if r.service in AI_SERVICES]
    assert any(r.export_time.date() > day + timedelta(days=1) for r in rows), "some rows are exported days late"
    assert any(r.usage_end_time.date() > day for r in rows), "the 23:00 row ends on the next day"

    sim.as_of = datetime(day.year, day.month, day.day, 23, 59, tzinfo=UTC) + timedelta(days=1)
    early = totals(client(sim).daily_costs(day, day + timedelta(days=1)))[day]
    sim.as_of = None
    final = totals(client(sim).daily_costs(day, day + timedelta(days=1)))[day]

    assert early < final == sim.expected_total_usd(day)


def test_short_pages_are_followed_and_give_the_same_lines(sim: BigQueryBillingSimulator) -> None:
    whole = client(sim).daily_costs(START, END)
    paged_reader = client(sim, page_size=100)
    paged = paged_reader.daily_costs(START, END)

    assert paged == whole
    assert paged_reader.request_count > 10


def test_server_page_cap_is_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    simulator = BigQueryBillingSimulator(SyntheticOrg(seed=7), max_page_size=60)
    simulator.start()
    try:
        for name, value in simulator.env.items():
            monkeypatch.setenv(name, value)
        lines = client(simulator).daily_costs(START, START + timedelta(days=7))
        assert simulator.request_count() >= len(lines) // 60
        assert all(t == simulator.expected_total_usd(d) for d, t in totals(lines).items())
    finally:
        simulator.stop()


def test_a_row_repeated_across_pages_is_counted_once(sim: BigQueryBillingSimulator) -> None:
    sim.repeat_rows_across_pages = True
    lines = client(sim, page_size=50).daily_costs(START, START + timedelta(days=5))

    assert all(total == sim.expected_total_usd(day) for day, total in totals(lines).items())
    assert len(lines) == len(set(lines))


def test_pending_jobs_are_polled_until_complete(sim: BigQueryBillingSimulator) -> None:
    sim.pending_polls = 2
    lines = client(sim, page_size=200).daily_costs(START, START + timedelta(days=10))

    assert all(total == sim.expected_total_usd(day) for day, total in totals(lines).items())
    assert len(totals(lines)) == 10


def test_rate_limit_and_backend_errors_are_retried(sim: BigQueryBillingSimulator) -> None:
    sim.fail_next(429)
    sim.fail_next(503)
    reader = client(sim)
    lines = reader.daily_costs(START, START + timedelta(days=2))

    assert sim.request_count() == 3
    assert all(total == sim.expected_total_usd(day) for day, total in totals(lines).items())


def test_persistent_5xx_is_unavailable_after_bounded_retries(sim: BigQueryBillingSimulator) -> None:
    sim.fail_next(503, times=50)

    with pytest.raises(SourceUnavailableError, match="re-run later") as caught:
        client(sim).daily_costs(START, START + timedelta(days=2))
    assert str(caught.value).startswith("gcp 2026-10-01..2026-10-02: ")
    assert sim.request_count() <= 10, "retries are bounded in count, not only in time"


def test_refused_connection_fails_fast(sim: BigQueryBillingSimulator) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    reader = GcpBillingClient(TABLE, f"http://127.0.0.1:{port}", **FAST)

    with pytest.raises(SourceUnavailableError, match="AISPEND_BIGQUERY_ENDPOINT"):
        reader.daily_costs(START, START + timedelta(days=1))


def test_a_key_the_token_endpoint_refuses_names_the_setting_not_the_key(
    sim: BigQueryBillingSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info = service_account_info(sim.token_uri, stranger, key_id="stolen-key")
    key_file = tmp_path / "other.json"
    key_file.write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))

    with pytest.raises(SourceAuthError, match="GOOGLE_APPLICATION_CREDENTIALS") as caught:
        client(sim).daily_costs(START, START + timedelta(days=1))
    assert "invalid_grant" in str(caught.value)
    assert "PRIVATE KEY" not in str(caught.value) and info["private_key"][40:80] not in str(caught.value)
    assert sim.request_count() == 0


def test_permission_denied_is_an_auth_error_naming_the_settings(sim: BigQueryBillingSimulator) -> None:
    sim.fail_next(403, body=error_body(403, "Access Denied: Table: User does not have permission"))

    with pytest.raises(SourceAuthError, match="AISPEND_GCP_BILLING_TABLE") as caught:
        client(sim).daily_costs(START, START + timedelta(days=1))
    assert "accessDenied" in str(caught.value) and "ya29" not in str(caught.value)


def test_missing_table_names_the_setting(sim: BigQueryBillingSimulator) -> None:
    reader = GcpBillingClient("aispend-billing.billing_export.no_such_table", sim.url, **FAST)

    with pytest.raises(SourcePayloadError, match=r"404 .*check AISPEND_GCP_BILLING_TABLE"):
        reader.daily_costs(START, START + timedelta(days=1))


def test_a_malformed_table_setting_is_refused() -> None:
    with pytest.raises(SourcePayloadError, match="AISPEND_GCP_BILLING_TABLE must name a table"):
        GcpBillingClient("just_a_table")


@pytest.mark.parametrize(
    ("drop", "override", "expected"),
    [
        ({"cost"}, {}, "field 'cost' is missing"),
        ({"usage_date"}, {}, "field 'usage_date' is missing"),
        (set(), {"cost": "12,50"}, "field 'cost': expected a decimal amount"),
        (set(), {"currency": "EUR"}, "field 'currency' is 'EUR'"),
    ],
    ids=["no-cost", "no-day", "cost-not-decimal", "not-usd"],
)
def test_malformed_results_name_the_field(
    sim: BigQueryBillingSimulator, drop: set[str], override: dict[str, Any], expected: str
) -> None:
    sim.dropped_fields, sim.cell_overrides = drop, override

    with pytest.raises(SourcePayloadError, match=expected):
        client(sim).daily_costs(START, START + timedelta(days=1))


def test_the_simulator_refuses_a_query_it_does_not_recognise(sim: BigQueryBillingSimulator) -> None:
    class NettingClient(GcpBillingClient):
        @property
        def query(self) -> str:
            return super().query.replace("SUM(CAST(cost AS NUMERIC))", "SUM(cost)")

    with pytest.raises(SourcePayloadError, match=r"400 .*does not recognise this query"):
        NettingClient(TABLE, sim.url, **FAST).daily_costs(START, START + timedelta(days=1))


def test_jobs_insert_path_echoes_the_client_job_id_and_serves_int64_timestamps(sim: BigQueryBillingSimulator) -> None:
    import google.auth
    from google.cloud import bigquery

    credentials, project = google.auth.default(scopes=["https://www.googleapis.com/auth/bigquery"])
    bq = bigquery.Client(project=project, credentials=credentials, client_options={"api_endpoint": sim.url})
    reader = client(sim)
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("start", "TIMESTAMP", datetime(2026, 10, 1, tzinfo=UTC)),
            bigquery.ScalarQueryParameter("end", "TIMESTAMP", datetime(2026, 10, 2, tzinfo=UTC)),
            bigquery.ArrayQueryParameter("services", "STRING", list(AI_SERVICES)),
            bigquery.ScalarQueryParameter("label_key", "STRING", "team"),
        ]
    )
    job = bq.query(reader.query, job_config=config, job_id="aispend-test-job-1", job_retry=None)
    rows = list(job.result(page_size=20, retry=bigquery.DEFAULT_RETRY.with_timeout(5)))

    assert job.job_id == "aispend-test-job-1"
    assert sum(Decimal(r["cost"]) for r in rows) == sim.expected_total_usd(date(2026, 10, 1))
    assert all(r["last_export_time"].tzinfo is not None for r in rows)


def test_a_date_parameter_against_the_timestamp_column_is_refused(sim: BigQueryBillingSimulator) -> None:
    import google.auth
    from google.api_core.exceptions import BadRequest
    from google.cloud import bigquery

    credentials, project = google.auth.default(scopes=["https://www.googleapis.com/auth/bigquery"])
    bq = bigquery.Client(project=project, credentials=credentials, client_options={"api_endpoint": sim.url})
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("start", "DATE", date(2026, 10, 1)),
            bigquery.ScalarQueryParameter("end", "DATE", date(2026, 10, 2)),
            bigquery.ArrayQueryParameter("services", "STRING", list(AI_SERVICES)),
            bigquery.ScalarQueryParameter("label_key", "STRING", "team"),
        ]
    )
    with pytest.raises(BadRequest, match="TIMESTAMP, DATE"):
        bq.query_and_wait(client(sim).query, job_config=config, retry=None, job_retry=None)
