"""Pages read as Arrow columns (`core.columnar`) against the same pages read field by field, over real HTTP:
the same rows, the same rounding, and anything unusual left to the field-by-field path (which names it)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from pytest_httpserver import HTTPServer

from aispend_pipeline.core.http import chunk_columns, iter_daily_bucket_columns
from aispend_pipeline.errors import SourcePayloadError
from aispend_pipeline.sources.anthropic.client import AnthropicCostsClient
from aispend_pipeline.sources.anthropic.usage import AnthropicUsageClient
from aispend_pipeline.sources.openai.client import OpenAICostsClient
from aispend_pipeline.sources.openai.usage import OpenAIUsageClient

DAY = date(2026, 11, 1)
MIDNIGHT = 1793491200  # 2026-11-01T00:00:00Z
DAYS = 3


def openai_bucket(offset: int, results: str) -> str:
    start = MIDNIGHT + 86400 * offset
    times = f'"start_time": {start},\n  "end_time": {start + 86400}'
    return f'{{\n  "object": "bucket",\n  {times},\n  "results": {results}\n}}'


def anthropic_bucket(offset: int, results: str) -> str:
    day, after = DAY + timedelta(offset), DAY + timedelta(offset + 1)
    return f'{{\n  "starting_at": "{day}T00:00:00Z",\n  "ending_at": "{after}T00:00:00Z",\n  "results": {results}\n}}'


# Pretty-printed (newlines inside buckets), amounts as strings and numbers, float artefacts to round, an
# exponent, a credit, missing optional fields, fields the reader does not know (nested too).
OPENAI_COSTS = [
    """[
    {"object": "organization.costs.result", "amount": {"value": 0.30000000000000004, "currency": "usd"},
     "line_item": "gpt-4o, input", "project_id": "proj_a", "quantity": 1.2345678901234567e-05,
     "quantity_unit": "tokens", "user_id": null, "extra": {"nested": [1, 2]}},
    {"amount": {"value": "12.5", "currency": "usd"}, "line_item": "gpt-4o, output", "project_id": null},
    {"amount": {"value": 1e-7, "currency": "usd"}, "line_item": "web search", "project_id": "proj_b", "quantity": 3}
  ]""",
    """[{"amount": {"value": "-3.25", "currency": "usd"}, "line_item": "credit", "project_id": "proj_a"},
     {"amount": {"value": 12345678901234.123456789012, "currency": "usd"}, "project_id": "proj_c"}]""",
    "[]",
]
ANTHROPIC_COSTS = [
    """[
    {"currency": "USD", "amount": "123.4567", "workspace_id": "wrkspc_a", "description": "Claude Sonnet 4.5 Usage",
     "cost_type": "tokens", "model": "claude-sonnet-4-5", "service_tier": "standard", "token_type":
     "uncached_input_tokens", "context_window": "0-200k", "new_field": "x"},
    {"currency": "USD", "amount": "0.000000000055", "workspace_id": null, "description": "Web search"}
  ]""",
    """[{"currency": "USD", "amount": "-250", "description": "Credit"}]""",
    "[]",
]
OPENAI_USAGE = [
    """[
    {"object": "organization.usage.completions.result", "input_tokens": 900, "output_tokens": 300,
     "input_cached_tokens": 100, "num_model_requests": 4, "project_id": "proj_a", "model": "gpt-4o",
     "input_audio_tokens": 0, "batch": null},
    {"input_tokens": 5, "output_tokens": 0, "project_id": null, "model": "gpt-4o-mini", "input_uncached_tokens": 5}
  ]""",
    "[]",
    """[{"input_tokens": 7, "output_tokens": 1, "input_cache_write_tokens": 2, "model": "o3"}]""",
]
ANTHROPIC_USAGE = [
    """[
    {"uncached_input_tokens": 1000, "cache_creation": {"ephemeral_1h_input_tokens": 0,
     "ephemeral_5m_input_tokens": 40}, "cache_read_input_tokens": 250, "output_tokens": 333,
     "server_tool_use": {"web_search_requests": 2}, "workspace_id": "wrkspc_a", "model": "claude-haiku-4-5"},
    {"uncached_input_tokens": 1, "cache_read_input_tokens": 0, "output_tokens": 0, "workspace_id": null,
     "cache_creation": null}
  ]""",
    """[{"uncached_input_tokens": 9, "cache_read_input_tokens": 1, "output_tokens": 2, "model": "claude-opus-4-1"}]""",
    "[]",
]

CASES = {  # name: (client class, key, path, bucket renderer, results per day, money columns)
    "openai costs": (
        OpenAICostsClient,
        "/v1",
        "/organization/costs",
        openai_bucket,
        OPENAI_COSTS,
        ("amount_usd", "quantity"),
    ),
    "anthropic costs": (
        AnthropicCostsClient,
        "",
        "/v1/organizations/cost_report",
        anthropic_bucket,
        ANTHROPIC_COSTS,
        ("amount_usd",),
    ),
    "openai usage": (OpenAIUsageClient, "/v1", "/organization/usage/completions", openai_bucket, OPENAI_USAGE, ()),
    "anthropic usage": (
        AnthropicUsageClient,
        "",
        "/v1/organizations/usage_report/messages",
        anthropic_bucket,
        ANTHROPIC_USAGE,
        (),
    ),
}


def serve(httpserver: HTTPServer, case: str, pages: list[list[str]]) -> None:
    """Pages of buckets (each bucket: its day's results, the days in order), each page after the previous."""
    _, base, path, render, _, _ = CASES[case]
    httpserver.clear()
    day = 0
    for n, page in enumerate(pages):
        buckets = ", ".join(render(day + i, results) for i, results in enumerate(page))
        day += len(page)
        more = n + 1 < len(pages)
        cursor = f'"page_{n + 1}"' if more else "null"
        body = f'{{\n"data": [{buckets}],\n"has_more": {str(more).lower()},\n"next_page": {cursor}\n}}'
        httpserver.expect_ordered_request(base + path).respond_with_data(body, content_type="application/json")


def read(
    httpserver: HTTPServer, case: str, pages: list[list[str]], columnar: bool, http: dict[str, Any]
) -> tuple[list[tuple], set, Any]:
    """The pages served and read: (the rows, money as Decimal; the kinds of chunk; the client's rounding)."""
    rows, kinds, rounding = read_in_order(httpserver, case, pages, columnar, http)
    return rows, set(kinds), rounding


def read_in_order(
    httpserver: HTTPServer,
    case: str,
    pages: list[list[str]],
    columnar: bool,
    http: dict[str, Any],
    block_bytes: int | None = None,
) -> tuple[list[tuple], list[type], Any]:
    """As `read`, with the kind of each chunk in order; `block_bytes`: the columnar path's batch size."""
    serve(httpserver, case, pages)
    client_class, base, path, _, _, money = CASES[case]
    client = client_class("sk-admin-test", httpserver.url_for(base), **http)
    reader = client.bucket_reader()
    assert reader.columnar is not None
    if block_bytes is not None:
        reader = dataclasses.replace(reader, columnar=dataclasses.replace(reader.columnar, block_bytes=block_bytes))
    reader = reader if columnar else dataclasses.replace(reader, columnar=None)
    chunks = list(iter_daily_bucket_columns(client.api, path, {}, reader, DAY, DAY + timedelta(DAYS)))
    rows = []
    for chunk in chunks:
        columns = chunk_columns(chunk)
        for name in money:
            columns[name] = [None if v is None else Decimal(v) for v in columns[name]]
        rows += list(zip(*columns.values(), strict=True))
    return rows, [type(c) for c in chunks], getattr(client, "rounding_usd", None)


@pytest.mark.parametrize("case", list(CASES))
def test_pages_read_as_columns_give_the_rows_and_rounding_of_the_field_by_field_path(
    httpserver: HTTPServer, fast_http: dict[str, Any], case: str
) -> None:
    days = CASES[case][4]
    pages = [days[:2], days[2:]]

    columnar_rows, columnar_kinds, columnar_rounding = read(httpserver, case, pages, True, fast_http)
    plain_rows, plain_kinds, plain_rounding = read(httpserver, case, pages, False, fast_http)

    assert columnar_kinds == {pa.Table} and plain_kinds == {dict}  # each path was the one taken
    assert columnar_rows == plain_rows and len(plain_rows) >= 3
    assert columnar_rounding == plain_rounding


def test_the_columnar_path_rounds_half_even_and_reports_it_per_day(
    httpserver: HTTPServer, fast_http: dict[str, Any]
) -> None:
    rows, kinds, rounding = read(httpserver, "anthropic costs", [ANTHROPIC_COSTS], True, fast_http)

    assert kinds == {pa.Table}
    # 123.4567 cents and 0.000000000055 cents (5.5e-13 USD: half-even to 12 decimals is 1e-12 USD)
    assert [row[-1] for row in rows] == [Decimal("1.234567"), Decimal("0.000000000001"), Decimal("-2.5")]
    assert rounding == {DAY: Decimal("0.00000000000045")}


@pytest.mark.parametrize(
    ("case", "odd_day"),
    [
        ("openai costs", '[{"amount": {"value": "1.5", "currency": "USD"}, "project_id": "proj_a"}]'),
        ("openai costs", '[{"amount": {"value": "0.1000000000000000000000000000000001", "currency": "usd"}}]'),
        ("anthropic costs", '[{"currency": "USD", "amount": 42, "workspace_id": 7}]'),
        ("openai usage", '[{"input_tokens": 5, "output_tokens": 1, "num_model_requests": 2.0}]'),
        ("anthropic usage", '[{"uncached_input_tokens": 1, "cache_read_input_tokens": 0}]'),
    ],
    ids=["upper-case-usd", "more-digits-than-read", "numeric-workspace", "whole-float-count", "missing-required"],
)
def test_a_page_the_columnar_path_finds_unusual_is_read_field_by_field_and_counted_once(
    httpserver: HTTPServer, fast_http: dict[str, Any], case: str, odd_day: str
) -> None:
    """The unusual bucket follows one with rounding on its page: the page's rows and rounding are those of
    the field-by-field path alone (nothing counted twice), or its very error."""
    pages = [[CASES[case][4][0], odd_day], ["[]"]]

    try:
        plain = read(httpserver, case, pages, False, fast_http)
    except SourcePayloadError as exc:
        with pytest.raises(SourcePayloadError) as caught:
            read(httpserver, case, pages, True, fast_http)
        assert str(caught.value) == str(exc)
        return
    columnar_rows, columnar_kinds, columnar_rounding = read(httpserver, case, pages, True, fast_http)
    assert dict in columnar_kinds  # the odd page went field by field
    assert (columnar_rows, columnar_rounding) == (plain[0], plain[2])


@pytest.mark.parametrize("case", ["openai costs", "anthropic costs"])
def test_a_page_read_in_batches_goes_field_by_field_from_the_first_unusual_batch_on(
    httpserver: HTTPServer, fast_http: dict[str, Any], case: str
) -> None:
    """Batches of about one bucket: the first day's rows (with rounding) are handed on as Arrow columns, the
    unusual second day and the third go field by field; nothing is lost or counted twice."""
    days = CASES[case][4]
    odd = (
        '[{"amount": {"value": "1.5", "currency": "USD"}, "project_id": "proj_a"}]'
        if case == "openai costs"
        else '[{"currency": "usd", "amount": "150", "workspace_id": "wrkspc_a"}]'
    )
    pages = [[days[0], odd, days[1]]]

    # block_bytes=1: each batch is one bucket
    columnar_rows, columnar_kinds, columnar_rounding = read_in_order(httpserver, case, pages, True, fast_http, 1)
    plain_rows, _, plain_rounding = read_in_order(httpserver, case, pages, False, fast_http, 1)

    assert columnar_kinds[0] is pa.Table and dict in columnar_kinds  # both paths, one page
    assert columnar_rows == plain_rows and columnar_rounding == plain_rounding != {}
