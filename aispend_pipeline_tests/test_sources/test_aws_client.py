"""The Cost Explorer client (boto3 `ce`) over real HTTP against the JSON 1.1 simulator, never a stubbed boto3."""

from __future__ import annotations

import socket
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import boto3
import botocore.exceptions
import pandas as pd
import pytest
import requests

from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError
from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.simulators.paging import utc_today
from aispend_pipeline.sources.aws.client import AwsCostLine, CostExplorerClient, parse_services
from aispend_pipeline.sources.aws.simulator import (
    AI_SERVICES,
    HAIKU_3,
    SONNET_45,
    CostExplorerSimulator,
    bill_lines,
)
from aispend_pipeline.sources.aws.source import KEY_COLUMNS, RAW_TABLE, CostExplorerResource
from aispend_pipeline.sources.base import FrameSink, frame_from_records

START, END = date(2026, 10, 1), date(2026, 11, 1)  # 31 days, End exclusive
DAY = date(2026, 10, 6)  # a Tuesday


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[CostExplorerSimulator]:
    simulator = CostExplorerSimulator(SyntheticOrg(seed=7))
    simulator.start()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in simulator.env.items():
        monkeypatch.setenv(name, value)
    yield simulator
    simulator.stop()


def client(sim: CostExplorerSimulator, **options: Any) -> CostExplorerClient:
    return CostExplorerClient(endpoint=sim.url, **({"max_attempts": 3} | options))


def totals(lines: list[AwsCostLine]) -> dict[date, Decimal]:
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    for line in lines:
        by_day[line.usage_date] += line.cost_usd
    return dict(by_day)


def cost_requests(sim: CostExplorerSimulator) -> list[dict[str, Any]]:
    return [body for operation, body in sim.requests if operation == "GetCostAndUsage"]


def test_a_month_is_a_fixed_number_of_range_requests_and_matches_the_bill_exactly(sim) -> None:
    reader = client(sim)
    lines = reader.daily_costs(START, END)

    pairs = sim.expected_pairs(START, END)
    assert len(pairs) == 8 < len(sim.expected_pairs(START, END, "USAGE_TYPE")) == 12
    # Service and account discovery, the (service, usage type) and (service, account) totals, one request
    # per (service, account) pair, the fewer kind here: never per day.
    assert reader.request_count == sim.request_count() == 4 + len(pairs) == 12
    assert sim.operation_count("GetDimensionValues") == 2
    by_day = totals(lines)
    assert sorted(by_day) == [START + timedelta(days=i) for i in range(31)]
    assert all(by_day[day] == sim.expected_total_usd(day) for day in by_day)
    assert sum(by_day.values()) > Decimal(1000)
    for body in cost_requests(sim):
        assert body["TimePeriod"] == {"Start": "2026-10-01", "End": "2026-11-01"}, "End is exclusive"
        assert body["Granularity"] == "DAILY" and len(body["GroupBy"]) <= 2
        assert "UnblendedCost" in body["Metrics"]

    week = client(sim)
    week.daily_costs(START, START + timedelta(days=7))
    assert week.request_count == 4 + len(sim.expected_pairs(START, START + timedelta(days=7)))


@pytest.fixture
def many_accounts(monkeypatch: pytest.MonkeyPatch) -> Iterator[CostExplorerSimulator]:
    """An organisation of 15 linked accounts: more accounts than (service, usage type) pairs."""
    simulator = CostExplorerSimulator(SyntheticOrg(seed=7), linked_accounts=15)
    simulator.start()
    for name, value in simulator.env.items():
        monkeypatch.setenv(name, value)
    yield simulator
    simulator.stop()


def test_many_accounts_are_requested_per_usage_type_not_per_account(many_accounts) -> None:
    sim = many_accounts
    reader = client(sim)
    lines = reader.daily_costs(START, END)

    by_account, by_usage_type = sim.expected_pairs(START, END), sim.expected_pairs(START, END, "USAGE_TYPE")
    assert len(by_account) == 40 and len(by_usage_type) == 12
    # Discovery, the (service, usage type) totals, one request per (service, usage type) pair: no request
    # names an account, so the count does not grow with the accounts.
    assert reader.request_count == sim.request_count() == 3 + len(by_usage_type) == 15
    line_requests = cost_requests(sim)[1:]
    assert all(
        b["GroupBy"] == [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}, {"Type": "TAG", "Key": "team"}]
        for b in line_requests
    )
    assert {
        (f["And"][0]["Dimensions"]["Values"][0], f["And"][1]["Dimensions"]["Values"][0])
        for f in (b["Filter"] for b in line_requests)
    } == by_usage_type
    by_day = totals(lines)
    assert len(by_day) == 31 and all(by_day[day] == sim.expected_total_usd(day) for day in by_day)
    billed = {
        (b.service, b.account_id, b.usage_type, b.tag("team"), b.day): b.cost
        for day in by_day
        for b in sim.bill(day)
        if b.service in AI_SERVICES
    }
    assert {(x.service, x.account_id, x.usage_type, x.team_tag, x.usage_date): x.cost_usd for x in lines} == billed
    names = {x.account_id: x.account_name for x in lines}
    assert len(names) == 15 and names["210987654322"] == "search-prod-1"


def test_lines_per_usage_type_that_do_not_add_up_are_an_error(many_accounts) -> None:
    many_accounts.usage_type_drift = Decimal("0.01")  # the totals changed before the line requests
    with pytest.raises(SourcePayloadError, match=r"usage type .*: the lines total .* but Cost Explorer's total is"):
        client(many_accounts).daily_costs(DAY, DAY + timedelta(days=1))


def test_each_line_keeps_service_account_usage_type_and_tag_with_the_exact_amount(sim) -> None:
    lines = client(sim).daily_costs(DAY, DAY + timedelta(days=1))

    billed = {
        (b.service, b.account_id, b.usage_type, b.tag("team")): b.cost
        for b in bill_lines(sim.org, DAY)
        if b.service in AI_SERVICES
    }
    got = {(x.service, x.account_id, x.usage_type, x.team_tag): x.cost_usd for x in lines}
    assert got == billed
    assert all(isinstance(x.cost_usd, Decimal) for x in lines)
    assert any(x.cost_usd.as_tuple().exponent == -10 and x.cost_usd % Decimal("0.000001") for x in lines), (
        "10-decimal amounts arrive exactly, not through a float"
    )
    assert {x.account_name for x in lines} == {"search-prod", "ml-research", "shared-platform"}
    assert {x.team_tag for x in lines} == {"search", "research", "data-platform", "support", None}
    tokens = next(x for x in lines if x.usage_type == "USE1-Claude3Sonnet-output-tokens")
    assert tokens.unit == "Count" and tokens.quantity is not None and tokens.quantity > 0


def test_short_pages_repeat_days_across_pages_and_nothing_is_counted_twice(sim) -> None:
    sim.max_page_size = 7
    sim.repeat_group_across_pages = True  # each page also starts with the previous page's last group
    reader = client(sim)
    lines = reader.daily_costs(START, START + timedelta(days=10))

    assert reader.request_count > 20, "many NextPageToken pages"
    by_day = totals(lines)
    assert all(by_day[day] == sim.expected_total_usd(day) for day in by_day) and len(by_day) == 10
    keys = [(x.usage_date, x.service, x.account_id, x.usage_type, x.team_tag) for x in lines]
    assert len(keys) == len(set(keys))
    assert all(body.get("NextPageToken") for body in cost_requests(sim)[1:3]), "the same request plus the token"
    first = raw_ce(sim).get_cost_and_usage(**{k: v for k, v in cost_requests(sim)[0].items() if k != "NextPageToken"})
    second = raw_ce(sim).get_cost_and_usage(**cost_requests(sim)[1])
    assert first["ResultsByTime"][-1]["TimePeriod"] == second["ResultsByTime"][0]["TimePeriod"], "a day on both pages"


def test_throttling_is_retried_by_botocore(sim) -> None:
    sim.fail_next(400)  # {"__type": "ThrottlingException"}
    reader = client(sim)
    lines = reader.daily_costs(DAY, DAY + timedelta(days=1))

    assert totals(lines) == {DAY: sim.expected_total_usd(DAY)}
    assert reader.request_count == 1 + 4 + len(sim.expected_pairs(DAY, DAY + timedelta(days=1)))


def test_persistent_throttling_fails_with_a_message_naming_source_and_days(sim) -> None:
    sim.fail_next(400, body={"__type": "LimitExceededException", "message": "Rate exceeded"}, times=10)
    reader = client(sim, max_attempts=2)
    with pytest.raises(SourceUnavailableError) as raised:
        reader.daily_costs(START, END)

    message = str(raised.value)
    assert message.startswith("aws 2026-10-01..2026-10-31: ")
    assert "LimitExceededException" in message and "2 attempts" in message and "re-run" in message
    assert reader.request_count == 2, "bounded: max_attempts in all"


def test_non_ai_services_never_leak_in(sim) -> None:
    billed = {b.service for b in bill_lines(sim.org, DAY)}
    assert {"Amazon Elastic Compute Cloud - Compute", "Amazon Simple Storage Service", "Amazon SageMaker"} <= billed

    lines = client(sim).daily_costs(DAY, DAY + timedelta(days=1))
    assert {x.service for x in lines} == set(AI_SERVICES)
    everything = sum((b.cost for b in bill_lines(sim.org, DAY)), Decimal(0))
    assert totals(lines)[DAY] == sim.expected_total_usd(DAY) < everything
    for body in cost_requests(sim):
        assert "Amazon Elastic Compute Cloud - Compute" not in str(body["Filter"])


def test_marketplace_bedrock_edition_services_are_discovered_and_included(sim) -> None:
    lines = client(sim).daily_costs(DAY, DAY + timedelta(days=1))

    services = {x.service for x in lines}
    assert {SONNET_45, HAIKU_3} <= services
    discovery, accounts = [body for operation, body in sim.requests if operation == "GetDimensionValues"]
    assert discovery["Dimension"] == "SERVICE" and accounts["Dimension"] == "LINKED_ACCOUNT"
    for body in (accounts, *cost_requests(sim)[:2]):
        totals_filter = body["Filter"]["Dimensions"]
        assert totals_filter["Key"] == "SERVICE" and {SONNET_45, HAIKU_3} <= set(totals_filter["Values"])
        assert "MatchOptions" not in totals_filter, "Dimensions accept EQUALS only: never ENDS_WITH"


def test_service_discovery_follows_its_pages(sim) -> None:
    sim.max_page_size = 2
    reader = client(sim)
    assert sorted(reader.ai_services(START, END)) == sorted(AI_SERVICES)
    assert sim.operation_count("GetDimensionValues") == reader.request_count == 4, "7 services, 2 a page"


def test_extra_services_setting_adds_a_service(sim) -> None:
    services = parse_services(" Amazon SageMaker, ")
    assert services == ("Amazon Bedrock", "Amazon Q", "Amazon SageMaker")
    lines = client(sim, services=services).daily_costs(DAY, DAY + timedelta(days=1))

    assert "Amazon SageMaker" in {x.service for x in lines}
    assert totals(lines)[DAY] == sim.expected_total_usd(DAY, (*AI_SERVICES, "Amazon SageMaker"))


def test_the_tag_key_setting_names_the_tag_grouped_by(sim) -> None:
    lines = client(sim, tag_key="owner").daily_costs(DAY, DAY + timedelta(days=1))

    assert {x.team_tag for x in lines} == {None} and {x.tag_key for x in lines} == {"owner"}
    assert {"Type": "TAG", "Key": "owner"} in cost_requests(sim)[2]["GroupBy"]
    assert totals(lines)[DAY] == sim.expected_total_usd(DAY)


def test_a_day_missing_from_the_answer_is_an_error(sim) -> None:
    sim.dropped_days = {date(2026, 10, 9)}
    with pytest.raises(SourcePayloadError, match="no bucket for 2026-10-09"):
        client(sim).daily_costs(START, END)


def test_lines_that_do_not_add_up_to_the_service_total_are_an_error(sim) -> None:
    sim.usage_type_drift = Decimal("0.01")  # the data changed between the totals and the line requests
    with pytest.raises(SourcePayloadError, match=r"account .*: the lines total .* but Cost Explorer's total is"):
        client(sim).daily_costs(DAY, DAY + timedelta(days=1))


def test_a_malformed_amount_names_the_field_and_day(sim) -> None:
    sim.amount_overrides = {"USE1-Claude3Sonnet-input-tokens": "12,50"}
    with pytest.raises(SourcePayloadError, match=r"aws 2026-10-06: field 'Metrics.UnblendedCost.Amount'"):
        client(sim).daily_costs(DAY, DAY + timedelta(days=1))


def test_an_answer_that_is_not_json_is_a_payload_error(sim) -> None:
    sim.fail_next(200, {"Content-Type": "application/x-amz-json-1.1"}, body='{"ResultsByTime": [')
    with pytest.raises(
        SourcePayloadError, match=r"^aws 2026-10-06\.\.2026-10-06: Cost Explorer answered HTTP 200 .* not JSON"
    ):
        client(sim).daily_costs(DAY, DAY + timedelta(days=1))


def test_recent_days_keep_the_estimated_flag(sim) -> None:
    today = utc_today()
    lines = client(sim).daily_costs(today - timedelta(days=40), today)

    flags = {x.usage_date: x.estimated for x in lines}
    assert flags[today - timedelta(days=1)] is True
    assert flags[today - timedelta(days=40)] is False


def test_a_wrong_access_key_is_an_auth_error(sim, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    with pytest.raises(SourceAuthError, match="UnrecognizedClientException") as raised:
        client(sim).daily_costs(DAY, DAY + timedelta(days=1))
    assert "AKIAWRONG" not in str(raised.value) and sim.env["AWS_SECRET_ACCESS_KEY"] not in str(raised.value)


def test_no_credentials_is_an_auth_error_without_a_metadata_probe(sim, monkeypatch, tmp_path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(SourceAuthError, match="no AWS credentials found"):
        client(sim).daily_costs(DAY, DAY + timedelta(days=1))
    assert sim.request_count() == 0


def test_an_unreachable_endpoint_is_unavailable(sim) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reader = CostExplorerClient(endpoint=f"http://127.0.0.1:{port}", max_attempts=2, timeout_seconds=2)
    with pytest.raises(SourceUnavailableError, match=r"could not reach Cost Explorer at http://127\.0\.0\.1"):
        reader.daily_costs(DAY, DAY + timedelta(days=1))


def test_the_source_is_enabled_only_by_aispend_aws_enabled() -> None:
    assert CostExplorerResource(enabled="true").is_configured
    assert CostExplorerResource(enabled=" TRUE ").is_configured
    assert not CostExplorerResource(enabled="false").is_configured
    assert not CostExplorerResource().is_configured
    assert CostExplorerResource().not_configured_reason == (
        "not configured: set AISPEND_AWS_ENABLED=true to enable this source"
    )


# --- the simulator is as strict as Cost Explorer


def raw_ce(sim: CostExplorerSimulator) -> Any:
    return boto3.session.Session().client("ce", region_name="us-east-1", endpoint_url=sim.url)


PERIOD = {"Start": "2026-10-01", "End": "2026-10-03"}


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        (
            {"GroupBy": [{"Type": "DIMENSION", "Key": k} for k in ("SERVICE", "LINKED_ACCOUNT", "USAGE_TYPE")]},
            "at most two",
        ),
        ({"TimePeriod": {"Start": "2026-10-03", "End": "2026-10-03"}}, "Start date"),
        (
            {"Filter": {"Dimensions": {"Key": "SERVICE", "Values": ["x"], "MatchOptions": ["ENDS_WITH"]}}},
            "EQUALS and CASE_SENSITIVE",
        ),
        ({"Filter": {"Not": {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Bedrock"]}}}}, "inside Not"),
        (
            {
                "Filter": {
                    "Or": [
                        {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Bedrock"]}},
                        {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": ["210987654321"]}},
                    ]
                }
            },
            "whole request",
        ),
        ({"Filter": {}}, "must not be empty"),
    ],
)
def test_the_simulator_refuses_what_cost_explorer_refuses(sim, request_body, message) -> None:
    body = {"TimePeriod": PERIOD, "Granularity": "DAILY", "Metrics": ["UnblendedCost"]} | request_body
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        raw_ce(sim).get_cost_and_usage(**body)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert message in raised.value.response["Error"]["Message"]


def test_the_simulator_answers_every_day_with_empty_ones_included(sim) -> None:
    answer = raw_ce(sim).get_cost_and_usage(
        TimePeriod=PERIOD,
        Granularity="DAILY",
        Metrics=["UnblendedCost"],
        Filter={"Dimensions": {"Key": "SERVICE", "Values": ["No Such Service"]}},
        GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}],
    )
    assert [r["TimePeriod"] for r in answer["ResultsByTime"]] == [
        {"Start": "2026-10-01", "End": "2026-10-02"},
        {"Start": "2026-10-02", "End": "2026-10-03"},
    ]
    assert all(r["Groups"] == [] for r in answer["ResultsByTime"])


def test_the_simulator_needs_a_sigv4_signature_and_the_json_11_target(sim) -> None:
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSInsightsIndexService.GetCostAndUsage"}
    unsigned = requests.post(sim.url + "/", data="{}", headers=headers, timeout=5)
    assert unsigned.status_code == 400
    assert unsigned.json()["__type"] == "MissingAuthenticationTokenException"
    assert unsigned.headers["Content-Type"] == "application/x-amz-json-1.1"
    wrong_target = requests.post(sim.url + "/", data="{}", headers=headers | {"X-Amz-Target": "X.Y"}, timeout=5)
    assert wrong_target.json()["__type"] == "UnknownOperationException"


def test_a_pull_stages_each_service_and_account_as_soon_as_its_lines_add_up(sim) -> None:
    # Hundreds of linked accounts are a year of ~0.8 M lines: the pull hands each (service, account)
    # pair's checked lines to the run's staging, never holding the whole range's lines.
    resource = CostExplorerResource(enabled="true", endpoint=sim.url)
    assert resource.streams
    sink = FrameSink()
    pulled = resource.pull_into(START, END, sink)
    chunks = sink.chunks[RAW_TABLE.qualified_name]
    pairs = [{(s, a) for s, a in zip(chunk["service"], chunk["account_id"], strict=True)} for chunk in chunks]
    assert pulled.frame is None and all(len(pair) == 1 for pair in pairs)
    assert len(chunks) == len(set().union(*pairs)) == len(cost_requests(sim)) - 2  # less the totals requests
    expected = frame_from_records(client(sim).daily_costs(START, END), RAW_TABLE, KEY_COLUMNS)
    pd.testing.assert_frame_equal(sink.frame(RAW_TABLE), expected)
