"""The OpenRouter activity client over real HTTP against its simulator: window, `date=`, errors, exact money."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests

from aispend_pipeline.core.days import days_between
from aispend_pipeline.errors import SourceAuthError, SourcePayloadError
from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.sources.openrouter.client import OpenRouterActivityClient, OpenRouterActivityLine
from aispend_pipeline.sources.openrouter.simulator import (
    BYOK_ENDPOINT,
    FREE_ENDPOINT,
    INFERENCE_KEY,
    MISSING,
    OUT_OF_WINDOW,
    PATH,
    RESEARCH_WORKSPACE,
    WORKSPACES,
    OpenRouterActivitySimulator,
)

TODAY = date(2026, 11, 1)  # the simulator's today: it serves 2026-10-02 .. 2026-10-31
OCTOBER = (date(2026, 10, 1), date(2026, 11, 1))  # 31 days, the first one older than the window
FAST = {"max_retries": 2, "backoff_seconds": 0, "timeout_seconds": 5}


@pytest.fixture
def sim() -> Iterator[OpenRouterActivitySimulator]:
    simulator = OpenRouterActivitySimulator(SyntheticOrg(seed=7))
    simulator.today = TODAY
    simulator.start()
    yield simulator
    simulator.stop()


def client(sim: OpenRouterActivitySimulator, key: str | None = None, today: date = TODAY) -> OpenRouterActivityClient:
    return OpenRouterActivityClient(key or sim.api_key, sim.env["OPENROUTER_BASE_URL"], today=lambda: today, **FAST)


def totals(lines: list[OpenRouterActivityLine]) -> dict[date, Decimal]:
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    for line in lines:
        by_day[line.usage_date] += line.usage_usd
    return dict(by_day)


def test_a_31_day_range_is_one_request_and_only_the_served_days_are_covered(sim: OpenRouterActivitySimulator) -> None:
    reader = client(sim)
    answer = reader.activity(*OCTOBER)

    assert reader.request_count == 1 and sim.request_count(PATH) == 1
    assert sim.queries == [{"group_by": "workspace"}], "no date=: one call answers the whole window"
    served = set(days_between(date(2026, 10, 2), TODAY))
    assert answer.window == (date(2026, 10, 2), TODAY)
    assert answer.days == served, "2026-10-01 is older than the window: not covered, so kept as stored"
    by_day = totals(answer.lines)
    assert set(by_day) == served
    for day in served:
        assert by_day[day] == sim.expected_total_usd(day), day
    assert sim.spend_usd(OCTOBER[0]) > 0 and sim.expected_total_usd(OCTOBER[0]) == 0
    assert sum(by_day.values()) > Decimal(500)


def test_a_single_day_is_asked_with_the_date_parameter(sim: OpenRouterActivitySimulator) -> None:
    day = date(2026, 10, 20)
    answer = client(sim).activity(day, day + timedelta(days=1))

    assert sim.queries == [{"group_by": "workspace", "date": "2026-10-20"}]
    assert answer.days == {day}
    assert totals(answer.lines) == {day: sim.expected_total_usd(day)}


def test_a_day_older_than_the_window_is_never_asked_with_date_and_is_not_covered(
    sim: OpenRouterActivitySimulator,
) -> None:
    day = date(2026, 9, 15)
    answer = client(sim).activity(day, day + timedelta(days=1))

    assert sim.queries == [{"group_by": "workspace"}], "date= outside the window is a 400 on the real API"
    assert answer.days == frozenset() and answer.lines == []


def test_the_window_follows_the_apis_clock_not_ours(sim: OpenRouterActivitySimulator) -> None:
    """Our clock a week ahead would drop the window's first week; the API's `Date` header decides."""
    answer = client(sim, today=TODAY + timedelta(days=7)).activity(*OCTOBER)

    assert answer.window == (date(2026, 10, 2), TODAY)
    assert answer.days == set(days_between(date(2026, 10, 2), TODAY))


def test_a_quiet_day_inside_the_window_is_covered_and_empty(sim: OpenRouterActivitySimulator) -> None:
    quiet = date(2026, 10, 11)
    sim.quiet_days = {quiet}
    answer = client(sim).activity(quiet - timedelta(days=1), quiet + timedelta(days=2))

    assert quiet in answer.days, "no activity is zero spend, not a missing day"
    assert set(totals(answer.lines)) == answer.days - {quiet}


def test_rows_carry_workspace_endpoint_tokens_byok_and_free_models(sim: OpenRouterActivitySimulator) -> None:
    lines = client(sim).activity(date(2026, 10, 5), date(2026, 10, 12)).lines

    assert {line.workspace_id for line in lines} == set(WORKSPACES)
    research = [line for line in lines if line.workspace_id == RESEARCH_WORKSPACE]
    providers = {line.provider_name for line in research if line.model == "anthropic/claude-sonnet-4.5"}
    assert providers == {"Anthropic", "Amazon Bedrock"}, "one model through two endpoints stays two lines"
    free = [line for line in lines if line.endpoint_id == FREE_ENDPOINT]
    assert free and all(line.usage_usd == 0 and line.prompt_tokens for line in free)
    byok = [line for line in lines if line.endpoint_id == BYOK_ENDPOINT]
    assert byok and all(line.byok_usage_inference_usd > line.usage_usd > 0 for line in byok)
    assert all(line.requests and line.completion_tokens is not None for line in lines)


@pytest.mark.parametrize(
    ("served", "expected"),
    [(0.30000000000000004, Decimal("0.3")), (1.2345678901234567e-05, Decimal("0.000012345679")), (3, Decimal(3))],
    ids=["float-artefact", "exponent", "integer"],
)
def test_usage_numbers_are_read_exactly_from_their_text(
    sim: OpenRouterActivitySimulator, served: float, expected: Decimal
) -> None:
    sim.row_overrides = {"usage": served}
    day = date(2026, 10, 20)
    reader = client(sim)
    lines = reader.activity(day, day + timedelta(days=1)).lines

    assert lines and all(line.usage_usd == expected for line in lines)
    wire = Decimal(repr(served))  # the number's text as the simulator writes it
    assert reader.rounding_usd.get(day, Decimal(0)) == (expected - wire) * len(lines)


def test_float_artefacts_in_a_whole_window_add_up_to_the_exact_spend(sim: OpenRouterActivitySimulator) -> None:
    """The simulator adds request costs as floats, as the API does; the sums are still exact per day."""
    raw = requests.get(
        sim.env["OPENROUTER_BASE_URL"] + "/activity",
        headers={"Authorization": f"Bearer {sim.api_key}"},
        params={"group_by": "workspace"},
        timeout=5,
    ).text
    assert "0000000000" in raw or "9999999999" in raw, "the wire carries float artefacts"
    reader = client(sim)
    answer = reader.activity(*OCTOBER)
    assert totals(answer.lines) == {day: sim.expected_total_usd(day) for day in answer.days}
    assert any(reader.rounding_usd.values()), "artefacts were rounded away, and counted"


def test_rejected_key_names_the_setting_and_never_the_key(sim: OpenRouterActivitySimulator) -> None:
    secret = "sk-or-v1-wrong-0123456789abcdef"
    with pytest.raises(SourceAuthError) as caught:
        client(sim, key=secret).activity(*OCTOBER)

    assert "OPENROUTER_API_KEY" in str(caught.value) and "401" in str(caught.value)
    assert secret not in str(caught.value)
    assert sim.request_count(PATH) == 1, "a rejected key is not retried"


def test_an_inference_key_is_told_to_use_a_management_key(sim: OpenRouterActivitySimulator) -> None:
    with pytest.raises(SourceAuthError, match="403 \\(Only management keys can perform this operation\\)"):
        client(sim, key=INFERENCE_KEY).activity(*OCTOBER)


def test_429_is_retried_then_succeeds(sim: OpenRouterActivitySimulator) -> None:
    sim.fail_next(429, headers={"Retry-After": "0"})
    day = date(2026, 10, 20)
    reader = client(sim)

    answer = reader.activity(day, day + timedelta(days=1))

    assert sim.request_count(PATH) == 2 and reader.request_count == 2
    assert totals(answer.lines) == {day: sim.expected_total_usd(day)}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"usage": MISSING}, "field 'usage' of row 1 of /activity \\(.+\\) is missing"),
        ({"usage": "a lot"}, "field 'usage' of row 1 of /activity \\(.+\\): expected a decimal amount"),
        ({"usage": None}, "field 'usage' of row 1 .+ expected a decimal amount, got None"),
        ({"model": None}, "field 'model' of row 1 of /activity is None"),
        ({"prompt_tokens": 1.5}, "field 'prompt_tokens' of row 1 .+ expected a whole count"),
        ({"provider_name": 7}, "field 'provider_name' of row 1 .+ expected text"),
    ],
    ids=["usage-missing", "usage-text", "usage-null", "model-null", "fractional-tokens", "provider-not-text"],
)
def test_malformed_rows_name_the_source_day_row_and_field(
    sim: OpenRouterActivitySimulator, override: dict[str, Any], expected: str
) -> None:
    sim.row_overrides = override
    day = date(2026, 10, 20)
    with pytest.raises(SourcePayloadError, match=expected) as caught:
        client(sim).activity(day, day + timedelta(days=1))

    assert str(caught.value).startswith(f"openrouter {day}: ")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": {"date": "2026-10-20"}}, "expected an object with a 'data' list"),
        ({"data": ["row"]}, "row 1 of /activity is str, expected an object"),
        ({"data": [{"date": "20/10/2026", "model": "x", "usage": 1}]}, "field 'date' of row 1 .+ YYYY-MM-DD"),
        ("<html>bad gateway</html>", "not JSON"),
    ],
    ids=["data-not-a-list", "row-not-an-object", "date-not-iso", "not-json"],
)
def test_malformed_answers_are_payload_errors_naming_the_field(
    sim: OpenRouterActivitySimulator, body: Any, expected: str
) -> None:
    sim.fail_next(200, body=body)
    with pytest.raises(SourcePayloadError, match=expected) as caught:
        client(sim).activity(*OCTOBER)

    assert str(caught.value).startswith("openrouter")


def test_the_simulator_refuses_dates_outside_its_window_like_the_api(sim: OpenRouterActivitySimulator) -> None:
    def ask(**params: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {sim.api_key}"}
        return requests.get(sim.env["OPENROUTER_BASE_URL"] + "/activity", params=params, headers=headers, timeout=5)

    for day in (TODAY, TODAY - timedelta(days=31)):
        refused = ask(date=day.isoformat())
        assert refused.status_code == 400
        assert refused.json() == {"error": {"code": 400, "message": OUT_OF_WINDOW}}
    served = ask(date=(TODAY - timedelta(days=30)).isoformat())
    assert served.status_code == 200 and served.json()["data"]
    assert "workspace_id" not in served.json()["data"][0], "rows are summed across workspaces without group_by"
    assert parsedate_to_datetime(served.headers["Date"]).date() == TODAY, "the simulator's clock, in its Date header"


def test_the_client_imports_without_dagster_or_dataframes() -> None:
    code = (
        "import sys, aispend_pipeline.sources.openrouter.client\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'pandas', 'duckdb', 'pandera'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"
