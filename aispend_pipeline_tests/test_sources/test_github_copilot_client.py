"""The GitHub Copilot seats client over real HTTP against the simulator; odd payloads hand-crafted."""

from __future__ import annotations

import calendar
import copy
import dataclasses
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer

from aispend_pipeline.core.days import days_between
from aispend_pipeline.core.money import MONEY_SCALE
from aispend_pipeline.errors import SourceAuthError, SourcePayloadError, SourceUnavailableError
from aispend_pipeline.settings import SettingsError
from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.sources.base import FrameSink, frame_from_records, raw_frame
from aispend_pipeline.sources.github_copilot.client import CHUNK_DAYS, GitHubCopilotClient, daily_shares
from aispend_pipeline.sources.github_copilot.simulator import ORG_ID, GitHubCopilotSimulator
from aispend_pipeline.sources.github_copilot.source import KEY_COLUMNS, RAW_TABLE, GitHubCopilotResource
from aispend_pipeline.warehouse.duckdb import DuckDBWarehouse

AS_OF = date(2026, 10, 20)  # the seat list as of this day: bkernighan's seat ends on 2026-11-01
FAST = {"max_retries": 2, "backoff_seconds": 0, "timeout_seconds": 5}


@dataclasses.dataclass(frozen=True)
class SeatDay:
    """One seat-day line of the client's columns."""

    usage_date: date
    user_name: str | None
    assignee_type: str | None
    github_team: str | None
    plan_type: str
    seat_created_date: date
    pending_cancellation_date: date | None
    last_activity_at: str | None
    last_activity_date: date | None
    last_activity_editor: str | None
    monthly_price_usd: Decimal
    amount_usd: Decimal


@pytest.fixture
def sim() -> Iterator[GitHubCopilotSimulator]:
    simulator = GitHubCopilotSimulator(SyntheticOrg(seed=7), max_page_size=5)
    simulator.as_of = AS_OF
    simulator.start()
    yield simulator
    simulator.stop()


def client(sim: GitHubCopilotSimulator, **options: Any) -> GitHubCopilotClient:
    settings = {"token": sim.token, "org": sim.org_login, "base_url": sim.url} | options
    http = {k: settings.pop(k) for k in list(settings) if k in FAST}
    return GitHubCopilotClient(**settings, **(FAST | http))


def seat_days(reader: GitHubCopilotClient, start: date, end: date, days: set[date] | None = None) -> list[SeatDay]:
    """The client's seat-day columns as one record per line (money as Decimal), to assert on."""
    lines = []
    for chunk in reader.daily_seat_columns(start, end, days):
        for values in zip(*chunk.values(), strict=True):
            row = dict(zip(chunk, values, strict=True))
            row["amount_usd"], row["monthly_price_usd"] = Decimal(row["amount_usd"]), Decimal(row["monthly_price_usd"])
            lines.append(SeatDay(**row))
    return lines


def totals(lines: list[SeatDay]) -> dict[date, Decimal]:
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    for line in lines:
        by_day[line.usage_date] += line.amount_usd
    return dict(by_day)


def month(year: int, number: int) -> tuple[date, date]:
    first = date(year, number, 1)
    return first, first + timedelta(days=calendar.monthrange(year, number)[1])


def seat_lines(lines: list[SeatDay], login: str | None) -> list[SeatDay]:
    return [line for line in lines if line.user_name == login]


def test_the_seat_list_is_read_across_link_pages_and_every_day_matches_exactly(sim: GitHubCopilotSimulator) -> None:
    reader = client(sim)
    start, end = AS_OF - timedelta(days=61), AS_OF + timedelta(days=1)
    lines = seat_days(reader, start, end)

    # 14 seats in pages of 5: the billing call plus three seat pages, whatever the number of days.
    assert reader.request_count == 4 and sim.request_count() == 4
    assert sim.per_page_seen == [100, 100, 100], "asks for GitHub's maximum page size every time"
    assert sim.request_count(f"/organizations/{ORG_ID}/copilot/billing/seats") == 2, "next URLs followed verbatim"
    assert {line.user_name for line in lines} == {s.login for s in sim.seats()}
    by_day = totals(lines)
    assert sorted(by_day) == [start + timedelta(days=i) for i in range(62)]
    for day, total in by_day.items():
        assert total == sim.expected_total_usd(day), day
    assert all(-line.amount_usd.as_tuple().exponent <= MONEY_SCALE for line in lines)


def test_a_seat_month_sums_exactly_to_the_plan_price_for_every_month_length_and_price() -> None:
    prices = [Decimal(19), Decimal(39), Decimal("23.45"), Decimal("0.01")]
    for year in (2026, 2027, 2028):
        for number in range(1, 13):
            for price in prices:
                shares = daily_shares(price, year, number)
                assert len(shares) == calendar.monthrange(year, number)[1]
                assert sum(shares, Decimal(0)) == price, (year, number, price)
                assert max(shares) - min(shares) <= Decimal(1).scaleb(-MONEY_SCALE)
                assert all(-share.as_tuple().exponent <= MONEY_SCALE for share in shares)
    assert daily_shares(Decimal(19), 2026, 9)[0] == Decimal("0.633333333333"), "19/30, not rounded to the cent"


def test_a_full_month_of_a_seat_costs_the_business_price_exactly(sim: GitHubCopilotSimulator) -> None:
    lines = seat_days(client(sim), *month(2026, 9))

    ada = seat_lines(lines, "ada")
    assert len(ada) == 30 and sum(line.amount_usd for line in ada) == Decimal(19)
    assert {(line.plan_type, line.monthly_price_usd) for line in ada} == {("business", Decimal(19))}


def test_an_enterprise_organisation_prices_seats_at_39(sim: GitHubCopilotSimulator) -> None:
    sim.plan = "enterprise"
    lines = seat_days(client(sim), *month(2026, 9))

    assert sum(line.amount_usd for line in seat_lines(lines, "ada")) == Decimal(39)
    assert {line.plan_type for line in lines} == {"enterprise"}


def test_the_price_setting_overrides_the_list_price(sim: GitHubCopilotSimulator) -> None:
    price = Decimal("17.10")
    lines = seat_days(client(sim, seat_price_usd=price), *month(2026, 9))

    assert sum(line.amount_usd for line in seat_lines(lines, "ada")) == price
    for day, total in totals(lines).items():
        assert total == sim.expected_total_usd(day, price) != sim.expected_total_usd(day), day


def test_a_seat_created_mid_month_is_billed_from_its_creation_day(sim: GitHubCopilotSimulator) -> None:
    lines = seat_lines(seat_days(client(sim), *month(2026, 9)), "tberners")

    assert [line.usage_date for line in lines] == [date(2026, 9, d) for d in range(15, 31)]
    assert sum(line.amount_usd for line in lines) == sum(daily_shares(Decimal(19), 2026, 9)[14:], Decimal(0))
    assert {line.seat_created_date for line in lines} == {date(2026, 9, 15)}


def test_a_pending_cancellation_ends_the_seat_at_the_next_billing_cycle(sim: GitHubCopilotSimulator) -> None:
    lines = seat_lines(seat_days(client(sim), date(2026, 10, 1), date(2026, 11, 15)), "bkernighan")

    assert {line.pending_cancellation_date for line in lines} == {date(2026, 11, 1)}
    assert max(line.usage_date for line in lines) == date(2026, 10, 31), "not billed from the cancellation date"
    assert sum(line.amount_usd for line in lines) == Decimal(19), "billed for the whole of its last cycle"


def test_inactive_seats_stay_visible_with_their_last_activity(sim: GitHubCopilotSimulator) -> None:
    lines = seat_days(client(sim), AS_OF - timedelta(days=1), AS_OF)
    by_user = {line.user_name: line for line in lines}

    assert by_user["linus"].last_activity_date is None and by_user["linus"].amount_usd > 0, "never used, still paid"
    assert by_user["dritchie"].last_activity_date == AS_OF - timedelta(days=46)
    grace = next(s for s in sim.seats() if s.login == "grace").last_activity_at
    assert grace is not None and grace.utcoffset() == timedelta(hours=-7), "the simulator sends a -07:00 offset"
    assert by_user["grace"].last_activity_date == grace.astimezone(UTC).date() != grace.date(), "its UTC day"
    assert by_user["grace"].last_activity_at == grace.astimezone(UTC).isoformat()
    assert by_user["grace"].last_activity_editor.startswith("JetBrains")  # type: ignore[union-attr]


def test_a_seat_without_assignee_or_plan_is_billed_by_its_team_at_the_org_plan(sim: GitHubCopilotSimulator) -> None:
    lines = seat_days(client(sim), AS_OF - timedelta(days=1), AS_OF)

    (orphan,) = seat_lines(lines, None)
    assert orphan.github_team == "platform" and orphan.assignee_type is None and orphan.amount_usd > 0
    sbourne = seat_lines(lines, "sbourne")[0]
    assert "plan_type" not in sim.seat_json(next(s for s in sim.seats() if s.login == "sbourne"))
    assert sbourne.plan_type == "business"


def test_a_rejected_token_names_the_setting_and_the_providers_message(sim: GitHubCopilotSimulator) -> None:
    with pytest.raises(SourceAuthError) as caught:
        seat_days(client(sim, token="ghp_wrongTokenValue123"), AS_OF, AS_OF + timedelta(days=1))

    message = str(caught.value)
    assert message.startswith("github_copilot: /orgs/acme-ai/copilot/billing answered 401 (Bad credentials)")
    assert "GITHUB_TOKEN" in message and "manage_billing:copilot" in message
    assert "ghp_wrongTokenValue123" not in message
    assert sim.request_count() == 1, "an auth error is not retried"


def test_an_unknown_organisation_says_to_check_the_org_setting(sim: GitHubCopilotSimulator) -> None:
    with pytest.raises(SourcePayloadError) as caught:
        seat_days(client(sim, org="no-such-org"), AS_OF, AS_OF + timedelta(days=1))

    assert str(caught.value).startswith(
        "github_copilot: /orgs/no-such-org/copilot/billing answered 404 (Not Found); check GITHUB_ORG"
    )


@pytest.mark.parametrize(
    ("status", "secondary"), [(403, False), (429, False), (403, True)], ids=["primary", "primary-429", "secondary"]
)
def test_rate_limits_are_retried(sim: GitHubCopilotSimulator, status: int, secondary: bool) -> None:
    sim.rate_limit_next(2, status=status, secondary=secondary)
    reader = client(sim)
    lines = seat_days(reader, AS_OF - timedelta(days=1), AS_OF)

    assert totals(lines)[AS_OF - timedelta(days=1)] == sim.expected_total_usd(AS_OF - timedelta(days=1))
    assert reader.request_count == 6 == sim.request_count(), "two rate-limited answers, then the four calls"


def test_a_persistent_rate_limit_names_source_status_and_what_to_do(sim: GitHubCopilotSimulator) -> None:
    sim.rate_limit_next(3)
    with pytest.raises(SourceUnavailableError) as caught:
        seat_days(client(sim), AS_OF, AS_OF + timedelta(days=1))

    message = str(caught.value)
    assert message.startswith(
        "github_copilot: /orgs/acme-ai/copilot/billing still answered 403 "
        "(rate limited: API rate limit exceeded for user ID 1.) after 2 retries (the limit resets at "
    )
    assert message.endswith("re-run after the limit resets")


def test_a_persistent_server_error_names_source_status_and_what_to_do(sim: GitHubCopilotSimulator) -> None:
    sim.fail_next(502, times=3)
    with pytest.raises(SourceUnavailableError) as caught:
        seat_days(client(sim), AS_OF, AS_OF + timedelta(days=1))

    assert str(caught.value) == (
        "github_copilot: /orgs/acme-ai/copilot/billing still answered 502 after 2 retries (simulated HTTP 502); "
        "the provider is unavailable or rate-limiting: re-run later"
    )


def test_no_requested_day_means_no_request(sim: GitHubCopilotSimulator) -> None:
    reader = client(sim)
    assert seat_days(reader, AS_OF - timedelta(days=5), AS_OF, days=set()) == []
    assert reader.request_count == 0


# ---------------------------------------------------------------- payloads the simulator never sends


def serve(httpserver: HTTPServer, seats_json: str, plan: str = '"business"') -> GitHubCopilotClient:
    httpserver.expect_request("/orgs/acme/copilot/billing").respond_with_data(
        f'{{"plan_type": {plan}, "seat_breakdown": {{"total": 1}}}}', content_type="application/json"
    )
    httpserver.expect_request("/orgs/acme/copilot/billing/seats").respond_with_data(
        f'{{"total_seats": 1, "seats": {seats_json}}}', content_type="application/json"
    )
    return GitHubCopilotClient("ghp_test", "acme", httpserver.url_for("/"), **FAST)


def test_the_headers_github_asks_for_are_sent(httpserver: HTTPServer) -> None:
    seat_days(serve(httpserver, "[]"), AS_OF, AS_OF + timedelta(days=1))

    request, _ = httpserver.log[0]
    assert request.headers["Authorization"] == "Bearer ghp_test"
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert httpserver.log[1][0].args["per_page"] == "100"


def test_a_seat_without_created_at_names_the_seat_and_the_field(httpserver: HTTPServer) -> None:
    reader = serve(httpserver, '[{"assignee": {"login": "octocat"}, "created_at": null}]')

    with pytest.raises(SourcePayloadError, match=r"seat 1 \(octocat\): field 'created_at' is None, expected an ISO"):
        seat_days(reader, AS_OF, AS_OF + timedelta(days=1))


def test_an_unknown_org_plan_needs_the_price_setting(httpserver: HTTPServer) -> None:
    reader = serve(httpserver, "[]", plan='"unknown"')

    with pytest.raises(SourcePayloadError, match="set AISPEND_COPILOT_SEAT_PRICE_USD to price its seats"):
        seat_days(reader, AS_OF, AS_OF + timedelta(days=1))


# ---------------------------------------------------------------- the resource: price setting, days computed


def test_a_price_setting_beyond_the_money_scale_is_a_settings_error() -> None:
    resource = GitHubCopilotResource(token="t", org="o", seat_price_usd="19.0000000000001")
    with pytest.raises(SettingsError, match=r"AISPEND_COPILOT_SEAT_PRICE_USD: amount '19\.0000000000001' has more"):
        resource.seat_price()
    assert GitHubCopilotResource(token="t", org="o", seat_price_usd="21.50").seat_price() == Decimal("21.50")


def test_older_days_are_computed_only_when_nothing_is_stored_for_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AISPEND_RESTATEMENT_DAYS", "2")
    resource = GitHubCopilotResource(token="t", org="o", duckdb_path=str(tmp_path / "w.duckdb"))
    today = date(2026, 12, 2)
    stored = [date(2026, 11, 20), date(2026, 11, 28), date(2026, 11, 30)]
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    warehouse.ensure_tables([RAW_TABLE])
    for day in stored:
        warehouse.execute(
            "INSERT INTO raw.github_copilot_seats (usage_date, plan_type, seat_created_date, monthly_price_usd, "
            "amount_usd, line_ordinal) VALUES ($day, 'business', $day, 19, 0.6, 0)",
            {"day": day},
        )

    days = resource.days_to_compute(date(2026, 11, 18), date(2026, 12, 2), today)

    # The live window is 2026-11-29 .. 12-01 (yesterday and the 2 days before it): always recomputed.
    assert date(2026, 11, 30) in days, "a stored day of the live window is recomputed"
    assert date(2026, 11, 20) not in days and date(2026, 11, 28) not in days, "older stored days stay as pulled"
    assert days == set(days_between(date(2026, 11, 18), date(2026, 12, 2))) - {date(2026, 11, 20), date(2026, 11, 28)}


def test_the_raw_frame_of_many_seat_days_is_built_from_the_records_without_copying_them(
    sim: GitHubCopilotSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A year of an organisation's seats is ~1.5 M records; `dataclasses.asdict` deep-copied each field of
    # each (most of the pull's time). The frame must be the same as from those copies, without them.
    lines = seat_days(client(sim), AS_OF - timedelta(days=61), AS_OF + timedelta(days=1))
    expected = raw_frame([dataclasses.asdict(line) for line in lines], RAW_TABLE, KEY_COLUMNS)

    def no_copy(*_: Any, **__: Any) -> Any:
        raise AssertionError("a record was deep-copied")

    monkeypatch.setattr(copy, "deepcopy", no_copy)
    frame = frame_from_records(lines, RAW_TABLE, KEY_COLUMNS)

    pd.testing.assert_frame_equal(frame, expected)
    assert len(frame) == len(lines) and frame["amount_usd"].map(Decimal).sum() == sum(totals(lines).values())


def test_a_pull_hands_the_seat_days_over_a_month_of_columns_at_a_time(sim: GitHubCopilotSimulator) -> None:
    # A year of 5,000 seats is ~1.5 M seat-days: built as columns and staged month by month, the pull holds
    # one chunk, never a record per seat-day (the whole year as objects took ~2 GB).
    start, end = AS_OF - timedelta(days=61), AS_OF + timedelta(days=1)
    sink = FrameSink()
    resource = GitHubCopilotResource(token=sim.token, org=sim.org_login, api_url=sim.url, duckdb_path="/nonexistent")
    assert resource.streams
    pulled = resource.pull_into(start, end, sink)
    chunks = sink.chunks[RAW_TABLE.qualified_name]
    assert pulled.frame is None and len(chunks) == 2, "62 days: 31 + 31"
    assert all(len(set(chunk["usage_date"])) == CHUNK_DAYS for chunk in chunks)
    lines = seat_days(client(sim), start, end)
    pd.testing.assert_frame_equal(sink.frame(RAW_TABLE), frame_from_records(lines, RAW_TABLE, KEY_COLUMNS))
