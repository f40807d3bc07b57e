"""The Azure Cost Management client over real HTTPS against the simulator (azure-identity and the SDK)."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aispend_pipeline.core.days import days_between
from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError
from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.sources.azure.client import (
    AzureCostClient,
    AzureCostLine,
    parse_services,
    query_windows,
)
from aispend_pipeline.sources.azure.simulator import (
    BILLING_ACCOUNT,
    FOUNDRY,
    MANAGEMENT_GROUP,
    SUB_PROD,
    SUB_SHARED,
    AzureCostSimulator,
    CostRow,
    cost_rows,
)
from aispend_pipeline.sources.azure.source import AzureCostResource

START, END = date(2026, 10, 1), date(2026, 11, 1)  # 31 days
FAST = {"max_retries": 2, "backoff_seconds": 0, "timeout_seconds": 10}
QPU = "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after"
ENTITY = "x-ms-ratelimit-microsoft.costmanagement-entity-retry-after"


def started(monkeypatch: pytest.MonkeyPatch, **options: Any) -> AzureCostSimulator:
    simulator = AzureCostSimulator(SyntheticOrg(seed=7), **options)
    simulator.start()
    for name, value in simulator.env.items():
        monkeypatch.setenv(name, value)
    return simulator


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[AzureCostSimulator]:
    simulator = started(monkeypatch)
    yield simulator
    simulator.stop()


def client(sim: AzureCostSimulator, scope: str | None = None, **options: Any) -> AzureCostClient:
    return AzureCostClient(scope or sim.env["AZURE_COST_SCOPE"], sim.url, **(FAST | options))


def totals(lines: list[AzureCostLine]) -> dict[date, Decimal]:
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    for line in lines:
        by_day[line.usage_date] += line.cost_usd
    return dict(by_day)


def one_day(day: date) -> tuple[date, date]:
    return day, day + timedelta(days=1)


def test_a_month_is_one_request_and_matches_every_day_exactly(sim: AzureCostSimulator) -> None:
    reader = client(sim)
    lines = reader.daily_costs(START, END)

    assert reader.request_count == 1 and sim.request_count() == 1, "one query answers the 31 days"
    by_day = totals(lines)
    assert sorted(by_day) == list(days_between(START, END))
    assert all(total == sim.expected_total_usd(day) for day, total in by_day.items())
    assert sum(by_day.values()) > Decimal(2000)
    (body,) = sim.queries
    assert body["type"] == "ActualCost" and body["timeframe"] == "Custom"
    assert body["timePeriod"] == {"from": "2026-10-01T00:00:00Z", "to": "2026-10-31T23:59:59Z"}, "`to` is inclusive"
    dataset = body["dataset"]
    assert dataset["granularity"] == "Daily"
    assert [g["name"] for g in dataset["grouping"] if g["type"] == "TagKey"] == ["team"]
    assert {"SubscriptionId", "ResourceGroupName", "ServiceName", "MeterSubCategory", "Meter"} <= {
        g["name"] for g in dataset["grouping"]
    }
    assert any(line.charge_category == "Purchase" for line in lines), "the 1st's reservation purchase"


def test_next_links_are_followed_with_the_same_body(monkeypatch: pytest.MonkeyPatch, sim: AzureCostSimulator) -> None:
    whole = client(sim).daily_costs(START, END)
    paged_sim = started(monkeypatch, max_page_size=40)
    try:
        reader = client(paged_sim)
        paged = reader.daily_costs(START, END)
        assert reader.request_count == paged_sim.request_count() == -(-len(whole) // 40) > 10
        assert sorted(paged, key=repr) == sorted(whole, key=repr)
        assert len(paged_sim.queries) == 1, "every other request was a nextLink page"
    finally:
        paged_sim.stop()


def test_a_204_is_an_empty_answer_and_every_requested_day_is_covered(sim: AzureCostSimulator) -> None:
    first, end = date(2024, 3, 1), date(2024, 4, 1)  # before the billing account had usage
    reader = client(sim)
    assert reader.daily_costs(first, end) == []
    assert reader.request_count == 1

    resource = AzureCostResource(scope=sim.env["AZURE_COST_SCOPE"], endpoint=sim.url)
    pull = resource.pull(first, end)
    assert pull.frame.empty and pull.days == frozenset(days_between(first, end))


def test_days_without_rows_are_left_out_by_the_api_and_still_covered(sim: AzureCostSimulator) -> None:
    first, end = date(2024, 12, 20), date(2025, 1, 10)  # the billing account's usage starts on 2025-01-01
    resource = AzureCostResource(scope=sim.env["AZURE_COST_SCOPE"], endpoint=sim.url)
    pull = resource.pull(first, end)
    assert pull.api_requests == 1
    assert pull.days == frozenset(days_between(first, end)), "the answered range replaces its empty days too"
    assert set(pull.frame["usage_date"].dt.date) == set(days_between(date(2025, 1, 1), end))


@pytest.mark.parametrize(
    ("headers", "expected_wait"),
    [
        ({QPU: "3", ENTITY: "5"}, 5.0),  # the longest of Cost Management's own headers
        ({"Retry-After": "2"}, 2.0),
        ({}, 0.0),  # no header: backoff (0 s in tests)
    ],
)
def test_a_429_is_retried_with_or_without_retry_after(
    sim: AzureCostSimulator, headers: dict[str, str], expected_wait: float
) -> None:
    waits: list[float] = []
    sim.fail_next(429, headers)
    reader = client(sim, sleep=waits.append)
    lines = reader.daily_costs(*one_day(START))

    assert waits == [expected_wait]
    assert reader.request_count == sim.request_count() == 2
    assert totals(lines)[START] == sim.expected_total_usd(START)


def test_a_persistent_429_names_the_source_days_and_status(sim: AzureCostSimulator) -> None:
    sim.fail_next(429, {QPU: "1"}, times=5)
    reader = client(sim, sleep=lambda _: None)
    with pytest.raises(SourceUnavailableError) as caught:
        reader.daily_costs(START, END)

    message = str(caught.value)
    assert message.startswith("azure 2026-10-01..2026-10-31: ")
    assert "429 after 2 retries" in message and "re-run later" in message
    assert sim.request_count() == 3


def test_a_5xx_on_a_next_link_page_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    paged_sim = started(monkeypatch, max_page_size=200)
    try:
        paged_sim.fail_page = (2, 503, {"Retry-After": "1"})  # the second page fails once
        waits: list[float] = []
        reader = client(paged_sim, sleep=waits.append)
        lines = reader.daily_costs(START, END)
        assert waits == [1.0] and paged_sim.fail_page is None
        assert reader.request_count == paged_sim.request_count() == -(-len(lines) // 200) + 1
        assert all(total == paged_sim.expected_total_usd(day) for day, total in totals(lines).items())
    finally:
        paged_sim.stop()


def test_money_is_parsed_from_the_answer_text_never_through_float(sim: AzureCostSimulator) -> None:
    day = date(2026, 10, 14)

    def row(meter: str, cost: str) -> CostRow:
        return CostRow(day, SUB_PROD, "rg-exact", "eastus", FOUNDRY, "Azure OpenAI", meter, "Usage", (), Decimal(cost))

    sim.extra_rows += [
        row("gpt-4o 0806 Inp glbl 1K Tokens", "0.1"),
        row("gpt-4o 0806 Outp glbl 1K Tokens", "0.2"),
        row("gpt-4o-mini 0718 Inp glbl 1K Tokens", "1E-7"),  # served as 1E-07
        row("gpt-4o-mini 0718 Outp glbl 1K Tokens", "98765432.123456789012"),  # more digits than a double holds
    ]
    lines = [line for line in client(sim).daily_costs(*one_day(day)) if line.resource_group == "rg-exact"]

    amounts = sorted(line.cost_usd for line in lines)
    assert amounts == [Decimal("1E-7"), Decimal("0.1"), Decimal("0.2"), Decimal("98765432.123456789012")]
    assert Decimal(repr(float("98765432.123456789012"))) != amounts[-1], "a float would have lost digits"
    assert amounts[1] + amounts[2] == Decimal("0.3")
    whole = totals(client(sim).daily_costs(*one_day(day)))[day]
    assert whole == sim.expected_total_usd(day)


def test_double_artefacts_beyond_12_decimals_are_rounded_half_even_and_reported(sim: AzureCostSimulator) -> None:
    reader = client(sim)
    lines = reader.daily_costs(*one_day(START))
    assert any(len(str(row.cost_usd).split(".")[-1]) > 12 for row in cost_rows(sim.org, START))
    assert all(-line.cost_usd.as_tuple().exponent <= 12 for line in lines)  # type: ignore[operator]
    assert reader.rounding_usd[START] != 0
    assert totals(lines)[START] == sim.expected_total_usd(START)


def test_non_ai_lines_never_count_even_if_the_filter_is_ignored(sim: AzureCostSimulator) -> None:
    day = date(2026, 10, 6)
    served = {(r.service, r.meter_subcategory) for r in cost_rows(sim.org, day)}
    assert {("Virtual Machines", "Dsv5 Series"), ("Cognitive Services", "Speech")} <= served

    lines = client(sim).daily_costs(*one_day(day))
    assert {(line.service, line.meter_subcategory) for line in lines} == {
        ("Foundry Models", "Azure OpenAI"),
        ("Foundry Models", "Meta"),
        ("Cognitive Services", "Azure OpenAI"),
    }
    sim.ignore_filter = True
    assert sorted(client(sim).daily_costs(*one_day(day)), key=repr) == sorted(lines, key=repr)


def test_extra_services_are_added(sim: AzureCostSimulator) -> None:
    day = date(2026, 10, 6)
    services = parse_services(" Azure Machine Learning ,")
    assert services == ("Foundry Models", "Azure Machine Learning")
    lines = client(sim, services=services).daily_costs(*one_day(day))
    assert "Azure Machine Learning" in {line.service for line in lines}
    assert totals(lines)[day] == sim.expected_total_usd(day, services=services) > sim.expected_total_usd(day)
    assert sim.queries[-1]["dataset"]["filter"]["or"][0]["dimensions"]["values"] == list(services)


@pytest.mark.parametrize(
    "scope",
    [
        f"/subscriptions/{SUB_PROD}",
        f"subscriptions/{SUB_PROD}/resourceGroups/rg-support-bot",
        f"/{MANAGEMENT_GROUP}",
        f"/{BILLING_ACCOUNT}/",
    ],
)
def test_every_scope_kind_is_accepted(sim: AzureCostSimulator, scope: str) -> None:
    day = date(2026, 10, 7)
    lines = client(sim, scope=scope).daily_costs(*one_day(day))
    assert totals(lines)[day] == sim.expected_total_usd(day, scope=scope.strip("/")) > 0
    subscriptions = {line.subscription_id for line in lines}
    assert (SUB_SHARED in subscriptions) == (scope.strip("/") == BILLING_ACCOUNT)


def test_bad_and_unknown_scopes_are_clear_errors(sim: AzureCostSimulator) -> None:
    with pytest.raises(SourcePayloadError, match="AZURE_COST_SCOPE must name a Cost Management scope"):
        AzureCostClient("my-subscription", sim.url)
    with pytest.raises(SourcePayloadError, match=r"answered 404 \(NotFound: .*check AZURE_COST_SCOPE"):
        client(sim, scope="/subscriptions/00000000-0000-0000-0000-000000000000").daily_costs(*one_day(START))


def test_a_range_longer_than_a_month_is_one_query_per_month(sim: AzureCostSimulator) -> None:
    first, end = date(2026, 8, 20), date(2026, 11, 1)  # 73 days: the API would shorten one query silently
    reader = client(sim)
    by_day = totals(reader.daily_costs(first, end))
    assert reader.request_count == 3
    assert sorted(by_day) == list(days_between(first, end))
    assert all(total == sim.expected_total_usd(day) for day, total in by_day.items())


def test_query_windows_never_exceed_a_calendar_month() -> None:
    assert list(query_windows(date(2026, 10, 1), date(2026, 11, 1))) == [(date(2026, 10, 1), date(2026, 11, 1))]
    assert list(query_windows(date(2026, 1, 31), date(2026, 3, 5))) == [
        (date(2026, 1, 31), date(2026, 2, 28)),
        (date(2026, 2, 28), date(2026, 3, 5)),
    ]
    assert list(query_windows(date(2026, 12, 15), date(2027, 1, 20))) == [
        (date(2026, 12, 15), date(2027, 1, 15)),
        (date(2027, 1, 15), date(2027, 1, 20)),
    ]


def test_the_tag_key_setting_picks_the_tag_and_untagged_lines_have_none(sim: AzureCostSimulator) -> None:
    day = date(2026, 10, 8)
    assert {line.team_tag for line in client(sim).daily_costs(*one_day(day))} == {
        "search",
        "support",
        "data-platform",
        None,
    }
    assert {line.team_tag for line in client(sim, tag_key="env").daily_costs(*one_day(day))} == {"prod", "dev", None}


def test_columns_in_another_order_and_a_billing_currency_other_than_usd(sim: AzureCostSimulator) -> None:
    day = date(2026, 10, 9)
    usd = client(sim).daily_costs(*one_day(day))
    sim.reverse_columns = True
    assert sorted(client(sim).daily_costs(*one_day(day)), key=repr) == sorted(usd, key=repr)

    sim.billing_currency, sim.usd_per_unit = "EUR", Decimal("1.08")
    lines = client(sim).daily_costs(*one_day(day))
    assert {line.currency for line in lines} == {"EUR"}
    assert all(line.cost != line.cost_usd for line in lines)
    assert totals(lines)[day] == sim.expected_total_usd(day)


def test_a_rejected_token_and_a_missing_login_are_auth_errors(
    monkeypatch: pytest.MonkeyPatch, sim: AzureCostSimulator
) -> None:
    sim.token = "another-token"  # the stub az still hands out the old one
    with pytest.raises(SourceAuthError, match=r"answered 401 .*Cost Management Reader role on AZURE_COST_SCOPE"):
        client(sim).daily_costs(*one_day(START))

    monkeypatch.setenv("PATH", "/nonexistent")
    reader = client(sim)
    with pytest.raises(SourceAuthError, match="azure-identity found no credential"):
        reader.daily_costs(*one_day(START))
    assert reader.request_count == 0


def test_the_simulator_speaks_tls_only_to_its_own_ca(monkeypatch: pytest.MonkeyPatch, sim: AzureCostSimulator) -> None:
    assert sim.url.startswith("https://127.0.0.1:")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(SourceUnavailableError, match="could not reach Cost Management"):
        client(sim, max_retries=0).daily_costs(*one_day(START))


def test_an_unknown_credential_setting_is_an_auth_error(
    monkeypatch: pytest.MonkeyPatch, sim: AzureCostSimulator
) -> None:
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "NoSuchCredential")
    with pytest.raises(SourceAuthError, match=r"azure-identity refused its settings .*AZURE_TOKEN_CREDENTIALS"):
        client(sim).daily_costs(*one_day(START))


def test_the_ca_bundle_adds_the_local_ca_to_the_public_ones(sim: AzureCostSimulator) -> None:
    """The demo merges every simulator's settings: other HTTPS in the process must still verify."""
    import certifi

    bundle = Path(sim.env["REQUESTS_CA_BUNDLE"]).read_text()
    assert sim.env["SSL_CERT_FILE"] == sim.env["REQUESTS_CA_BUNDLE"]
    assert Path(certifi.where()).read_text() in bundle
    assert sim.ca.cert_pem.bytes().decode() in bundle
    assert sim.env["PATH"].split(os.pathsep)[0] == sim.az_directory
