"""The bundled simulators: a deterministic organisation, and wire formats as strict as the real APIs."""

from __future__ import annotations

import re
import statistics
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from aispend_pipeline.core.days import utc_midnight
from aispend_pipeline.simulators import RunningSimulators, SyntheticOrg, start_simulators
from aispend_pipeline.simulators.paging import utc_today
from aispend_pipeline.simulators.server import to_json
from aispend_pipeline.sources.anthropic.simulator import PATH as ANTHROPIC_PATH
from aispend_pipeline.sources.openai.simulator import PATH as OPENAI_PATH

TODAY = utc_today()
EIGHT_WEEKS = [TODAY - timedelta(days=i) for i in range(1, 57)]


def unix(day: date) -> int:
    return int(utc_midnight(day).timestamp())


def get_openai(sims: RunningSimulators, key: str | None = None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {key or sims.env['OPENAI_ADMIN_KEY']}"}
    return requests.get(sims.env["OPENAI_BASE_URL"] + "/organization/costs", params=params, headers=headers, timeout=5)


def get_anthropic(sims: RunningSimulators, headers: dict[str, Any] | None = None, **params: Any) -> requests.Response:
    """A header or parameter set to None is left out of the request."""
    sent = {"x-api-key": sims.env["ANTHROPIC_ADMIN_KEY"], "anthropic-version": "2023-06-01"} | (headers or {})
    return requests.get(sims.env["ANTHROPIC_BASE_URL"] + ANTHROPIC_PATH, params=params, headers=sent, timeout=5)


# --- the synthetic organisation


def test_amounts_depend_only_on_seed_day_and_line() -> None:
    one, two = SyntheticOrg(seed=7), SyntheticOrg(seed=7)
    assert all(one.openai_lines(day) == two.openai_lines(day) for day in EIGHT_WEEKS)
    assert all(one.anthropic_lines(day) == two.anthropic_lines(day) for day in EIGHT_WEEKS)
    assert SyntheticOrg(seed=8).openai_lines(EIGHT_WEEKS[0]) != one.openai_lines(EIGHT_WEEKS[0])


def test_weekends_are_quieter_and_the_org_spends_a_few_hundred_dollars_a_day() -> None:
    org = SyntheticOrg(seed=7, spike_day=date(2000, 1, 1))
    for provider in ("openai", "anthropic"):
        weekday = [org.expected_total_usd(provider, day) for day in EIGHT_WEEKS if day.weekday() < 5]
        weekend = [org.expected_total_usd(provider, day) for day in EIGHT_WEEKS if day.weekday() >= 5]
        ratio = statistics.mean(weekend) / statistics.mean(weekday)
        assert Decimal("0.28") < ratio < Decimal("0.42"), provider
        assert all(Decimal(100) < total < Decimal(1000) for total in weekday), provider


def test_support_bot_spikes_about_six_times_on_the_spike_day() -> None:
    spike = TODAY - timedelta(days=5)
    org = SyntheticOrg(seed=7)
    assert org.spike_day == spike

    def support_bot(day: date) -> Decimal:
        return sum((x.amount_usd for x in org.openai_lines(day) if x.project_id == "proj_support_bot"), Decimal(0))

    same_weekday = [support_bot(spike - timedelta(weeks=w)) for w in range(1, 5)]
    assert 4 < support_bot(spike) / statistics.mean(same_weekday) < 8


def test_money_is_exact_decimal_with_at_most_six_places() -> None:
    org = SyntheticOrg()
    amounts = [x.amount_usd for x in org.openai_lines(EIGHT_WEEKS[0])]
    amounts += [x.amount_cents for x in org.anthropic_lines(EIGHT_WEEKS[0])]
    assert all(isinstance(a, Decimal) and a.as_tuple().exponent >= -6 and a > 0 for a in amounts)


def test_unknown_provider_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown provider 'azure'"):
        SyntheticOrg().expected_total_usd("azure", TODAY)


def test_to_json_writes_decimals_as_exact_number_text() -> None:
    assert to_json({"a": Decimal("12.345600"), "b": [None, True, "x\n"], "c": 3}) == (
        '{"a": 12.345600, "b": [null, true, "x\\n"], "c": 3}'
    )


# --- OpenAI /organization/costs


def test_openai_serves_amounts_as_numbers_and_as_strings(sims: RunningSimulators) -> None:
    response = get_openai(sims, start_time=unix(TODAY - timedelta(days=7)), limit=7, **{"group_by[]": ["project_id"]})

    assert response.status_code == 200
    assert re.search(r'"value": \d+\.\d{6}[,}]', response.text), "some amounts are JSON numbers"
    assert re.search(r'"value": "\d+\.\d{6}"', response.text), "some amounts are JSON strings"


def test_openai_ranges_reproduce_the_same_numbers(sims: RunningSimulators) -> None:
    day = TODAY - timedelta(days=3)
    groups = ["project_id", "line_item"]
    wide = get_openai(sims, start_time=unix(day - timedelta(days=6)), limit=10, group_by=groups)
    narrow = get_openai(sims, start_time=unix(day), end_time=unix(day + timedelta(days=1)), **{"group_by[]": groups})

    wide_bucket = next(b for b in wide.json()["data"] if b["start_time"] == unix(day))
    assert narrow.json()["data"] == [wide_bucket]


def test_openai_serves_completed_days_only(sims: RunningSimulators) -> None:
    page = get_openai(sims, start_time=unix(TODAY - timedelta(days=2)), end_time=unix(TODAY + timedelta(days=3))).json()

    assert [b["start_time"] for b in page["data"]] == [unix(TODAY - timedelta(days=2)), unix(TODAY - timedelta(days=1))]
    assert page["has_more"] is False and page["next_page"] is None


def test_openai_without_group_by_has_one_total_row_per_bucket(sims: RunningSimulators) -> None:
    day = TODAY - timedelta(days=1)
    page = get_openai(sims, start_time=unix(day)).json()

    (result,) = page["data"][0]["results"]
    assert Decimal(str(result["amount"]["value"])) == sims.expected_total_usd("openai", day)
    assert result["project_id"] is None and result["line_item"] is None and result["quantity"] is None


def test_openai_pages_with_an_opaque_cursor(sims: RunningSimulators) -> None:
    start = unix(TODAY - timedelta(days=5))
    first = get_openai(sims, start_time=start, limit=2).json()
    second = get_openai(sims, start_time=start, limit=2, page=first["next_page"]).json()

    assert first["object"] == "page" and first["has_more"] is True
    assert first["next_page"].startswith("page_")
    assert second["data"][0]["start_time"] == start + 2 * 86400
    assert get_openai(sims, start_time=start, page="page_bogus").status_code == 400


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "start_time is required"),
        ({"start_time": "yesterday"}, "start_time must be a unix time"),
        ({"bucket_width": "1h"}, "bucket_width must be '1d'"),
        ({"limit": 181}, "limit must be an integer between 1 and 180"),
        ({"limit": 0}, "limit must be an integer between 1 and 180"),
        ({"group_by[]": "model"}, "group_by does not accept model"),
    ],
)
def test_openai_rejects_bad_queries_with_its_error_envelope(
    sims: RunningSimulators, params: dict[str, Any], message: str
) -> None:
    query = {"start_time": unix(TODAY - timedelta(days=1))} | params if params else {}
    response = get_openai(sims, **query)

    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_openai_wrong_key_is_401_in_openais_envelope(sims: RunningSimulators) -> None:
    response = get_openai(sims, key="sk-admin-nope", start_time=unix(TODAY))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert "sk-admin-nope" not in response.text


# --- Anthropic /v1/organizations/cost_report


def test_anthropic_rows_have_every_field_and_cents_as_strings(sims: RunningSimulators) -> None:
    day = TODAY - timedelta(days=1)
    page = get_anthropic(sims, starting_at=f"{day}T00:00:00Z", **{"group_by[]": ["workspace_id", "description"]})

    (bucket,) = page.json()["data"]
    assert (bucket["starting_at"], bucket["ending_at"]) == (f"{day}T00:00:00Z", f"{day + timedelta(days=1)}T00:00:00Z")
    fields = {"amount", "currency", "workspace_id", "description", "cost_type", "model", "service_tier"}
    assert all(set(r) == fields | {"token_type", "context_window"} for r in bucket["results"])
    assert all(isinstance(r["amount"], str) and r["currency"] == "USD" for r in bucket["results"])
    assert len(bucket["results"]) == sims.org.expected_lines("anthropic", day)


def test_anthropic_without_description_sums_per_workspace(sims: RunningSimulators) -> None:
    day = TODAY - timedelta(days=1)
    page = get_anthropic(sims, starting_at=f"{day}T00:00:00Z", group_by=["workspace_id"]).json()

    results = page["data"][0]["results"]
    assert [r["workspace_id"] for r in results] == ["wrkspc_research", "wrkspc_support", "wrkspc_platform", None]
    assert all(r["description"] is None and r["token_type"] is None for r in results)
    assert sum(Decimal(r["amount"]) for r in results) / 100 == sims.expected_total_usd("anthropic", day)


def test_anthropic_pages_and_serves_completed_days_only(sims: RunningSimulators) -> None:
    start = TODAY - timedelta(days=3)
    first = get_anthropic(sims, starting_at=f"{start}T00:00:00Z", limit=2).json()
    second = get_anthropic(sims, starting_at=f"{start}T00:00:00Z", limit=2, page=first["next_page"]).json()

    assert "object" not in first and first["has_more"] is True
    assert [b["starting_at"] for b in second["data"]] == [f"{TODAY - timedelta(days=1)}T00:00:00Z"]
    assert second["has_more"] is False and second["next_page"] is None


@pytest.mark.parametrize(
    ("headers", "params", "status", "error_type"),
    [
        ({"x-api-key": "sk-ant-admin-nope"}, {}, 401, "authentication_error"),
        ({"anthropic-version": None}, {}, 400, "invalid_request_error"),
        ({}, {"limit": 32}, 400, "invalid_request_error"),
        ({}, {"bucket_width": "1h"}, 400, "invalid_request_error"),
        ({}, {"starting_at": "2026-11-01T00:00:00"}, 400, "invalid_request_error"),
        ({}, {"starting_at": None}, 400, "invalid_request_error"),
        ({}, {"group_by[]": "model"}, 400, "invalid_request_error"),
    ],
    ids=["wrong-key", "no-version", "limit-over-31", "hourly", "no-time-zone", "no-start", "group-by-model"],
)
def test_anthropic_rejects_bad_requests_with_its_error_envelope(
    sims: RunningSimulators, headers: dict[str, Any], params: dict[str, Any], status: int, error_type: str
) -> None:
    query = {"starting_at": f"{TODAY - timedelta(days=1)}T00:00:00Z"} | params
    response = get_anthropic(sims, headers, **query)

    assert response.status_code == status
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == error_type
    assert "sk-ant-admin" not in response.text


# --- the server itself


def test_fail_next_answers_the_next_requests_then_recovers(sims: RunningSimulators) -> None:
    sims.openai.fail_next(503, headers={"Retry-After": "7"}, times=2)
    sims.openai.fail_next(500, body="not json at all")

    statuses = [get_openai(sims, start_time=unix(TODAY - timedelta(days=1))) for _ in range(4)]

    assert [r.status_code for r in statuses] == [503, 503, 500, 200]
    assert statuses[0].headers["Retry-After"] == "7" and "simulated HTTP 503" in statuses[0].text
    assert statuses[2].text == "not json at all"
    assert sims.openai.request_count(OPENAI_PATH) == 4 and sims.openai.request_count() == 4
    assert sims.anthropic.request_count() == 0


def test_unknown_paths_are_404_and_counted(sims: RunningSimulators) -> None:
    response = requests.get(sims.anthropic.url + "/v1/nothing", timeout=5)

    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"
    assert sims.anthropic.request_count("/v1/nothing") == 1


def test_env_points_at_the_servers_and_stop_frees_them() -> None:
    sims = start_simulators(seed=1, spike_day=TODAY - timedelta(days=2))
    with sims:
        assert sims.env["OPENAI_BASE_URL"] == f"http://127.0.0.1:{sims.openai.port}/v1"
        assert sims.env["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{sims.anthropic.port}"
        assert sims.org.seed == 1 and sims.org.spike_day == TODAY - timedelta(days=2)
        url = sims.anthropic.url
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
