"""OpenRouter's `GET /api/v1/activity`, served from the synthetic organisation.

As the real endpoint (its OpenAPI description and SDK models): a bearer management key (401 for an
unknown key, 403 "Only management keys can perform this operation" for an inference key), only the 30
completed UTC days before the simulator's `today` (configurable; its `Date` header says which day that
is), `date=` for one of those days (400 otherwise, with OpenRouter's own message), `group_by=workspace`
(else rows are summed across workspaces), `workspace_id` as a filter, no pagination, and errors as
`{"error": {"code", "message"}}`. `usage` is served as the float sum of per-request costs, so answers
carry float artefacts such as 0.30000000000000004, while `expected_total_usd` stays exact.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from itertools import pairwise
from typing import Any

from aispend_pipeline.simulators.base import HttpSimulator
from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.simulators.paging import utc_today
from aispend_pipeline.simulators.server import HttpError, Reply, Request, Route
from aispend_pipeline.sources.openrouter.client import served_window

DEMO_KEY = "sk-or-v1-management-simulator"
INFERENCE_KEY = "sk-or-v1-inference-simulator"  # a normal key: refused by /activity
PATH = "/api/v1/activity"
OUT_OF_WINDOW = "Date must be within the last 30 (completed) UTC days"
MISSING = object()  # a `row_overrides` value that leaves the field out of every row
BYOK_FEE = Decimal("0.05")  # OpenRouter's fee on bring-your-own-key usage, charged in credits

# endpoint id -> (model, permaslug, provider, USD per 1M prompt tokens, per 1M completion tokens, reasoning share)
ENDPOINTS: dict[str, tuple[str, str, str, float, float, float]] = {
    "3f1c2a9e-6b1d-4c57-9a0e-2f7d8c1b5a01": ("openai/gpt-4.1", "openai/gpt-4.1-2025-04-14", "OpenAI", 2.0, 8.0, 0.0),
    "7d4e8b21-0c3a-4f9e-b6d2-91a5c3e7f402": (
        "anthropic/claude-sonnet-4.5", "anthropic/claude-4.5-sonnet-20250929", "Anthropic", 3.0, 15.0, 0.1,
    ),
    "a92b6c14-5e7f-4d08-8c3b-6e1f0d2a9b03": (
        "anthropic/claude-sonnet-4.5", "anthropic/claude-4.5-sonnet-20250929", "Amazon Bedrock", 3.0, 15.0, 0.1,
    ),
    "c5e0d7a3-9f21-4b6c-a8e4-3d7b2f1c6e04": (
        "google/gemini-2.5-flash", "google/gemini-2.5-flash", "Google AI Studio", 0.3, 2.5, 0.2,
    ),
    "e8f3a6b5-2d4c-4e1a-9b7f-5c0e8d3a2f05": (
        "deepseek/deepseek-chat-v3.1", "deepseek/deepseek-chat-v3.1", "DeepInfra", 0.27, 1.0, 0.0,
    ),
    "0b6d9e42-7a1f-4c3e-8d5b-4f2a6c9e1d06": (
        "meta-llama/llama-3.3-70b-instruct:free", "meta-llama/llama-3.3-70b-instruct", "Chutes", 0.0, 0.0, 0.0,
    ),
    "4a7c1e83-6b2d-4f5a-9e0c-8d3b7f2a1c07": ("openai/gpt-4o-mini", "openai/gpt-4o-mini", "OpenAI", 0.15, 0.6, 0.0),
}  # fmt: skip
FREE_ENDPOINT = "0b6d9e42-7a1f-4c3e-8d5b-4f2a6c9e1d06"
BYOK_ENDPOINT = "4a7c1e83-6b2d-4f5a-9e0c-8d3b7f2a1c07"  # used with the workspace's own OpenAI key

DEFAULT_WORKSPACE = "9c1d4e7a-0000-4000-8000-000000000001"
RESEARCH_WORKSPACE = "9c1d4e7a-0000-4000-8000-000000000002"
SUPPORT_WORKSPACE = "9c1d4e7a-0000-4000-8000-000000000003"
# workspace -> (USD on a weekday, chance an endpoint has activity on a day, endpoint -> share of the budget)
WORKSPACES: dict[str, tuple[float, float, dict[str, float]]] = {
    RESEARCH_WORKSPACE: (
        38.0, 0.95, {
            "7d4e8b21-0c3a-4f9e-b6d2-91a5c3e7f402": 0.45, "a92b6c14-5e7f-4d08-8c3b-6e1f0d2a9b03": 0.2,
            "e8f3a6b5-2d4c-4e1a-9b7f-5c0e8d3a2f05": 0.15, FREE_ENDPOINT: 0.2,
        },
    ),
    SUPPORT_WORKSPACE: (
        22.0, 1.0, {
            "3f1c2a9e-6b1d-4c57-9a0e-2f7d8c1b5a01": 0.5, "c5e0d7a3-9f21-4b6c-a8e4-3d7b2f1c6e04": 0.3,
            BYOK_ENDPOINT: 0.2,
        },
    ),
    DEFAULT_WORKSPACE: (
        9.0, 0.7, {"c5e0d7a3-9f21-4b6c-a8e4-3d7b2f1c6e04": 0.6, "3f1c2a9e-6b1d-4c57-9a0e-2f7d8c1b5a01": 0.4},
    ),
}  # fmt: skip


@dataclass(frozen=True)
class ActivityRow:
    day: date
    workspace_id: str
    endpoint_id: str
    usage: Decimal  # the exact credits spent
    request_costs: tuple[Decimal, ...]  # what OpenRouter sums, as floats, into `usage`
    byok_usage_inference: Decimal
    requests: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int

    @property
    def served_usage(self) -> float:
        return _float_sum(self.request_costs)


def activity_rows(org: SyntheticOrg, day: date) -> list[ActivityRow]:
    """The day's rows per workspace and endpoint; amounts depend only on (seed, day, workspace, endpoint)."""
    rows = []
    for workspace, (budget, activity, shares) in WORKSPACES.items():
        for endpoint, share in shares.items():
            key = f"{workspace}|{endpoint}"
            spend = org._amount("openrouter", day, key, budget * share, activity)
            if spend is None:
                continue
            rng = random.Random(f"{org.seed}|openrouter-requests|{day.isoformat()}|{key}")
            _, _, _, prompt_price, completion_price, reasoning = ENDPOINTS[endpoint]
            usage, byok = spend, Decimal(0)
            if endpoint == FREE_ENDPOINT:
                usage = Decimal(0)
            elif endpoint == BYOK_ENDPOINT:
                usage, byok = (spend * BYOK_FEE).quantize(Decimal("0.000001")), spend
            priced = spend if endpoint != FREE_ENDPOINT else Decimal(0)
            prompt = round(float(priced) * 0.35 / prompt_price * 1e6) if prompt_price else rng.randint(10**5, 10**6)
            completion = round(float(priced) * 0.65 / completion_price * 1e6) if completion_price else prompt // 4
            rows.append(
                ActivityRow(
                    day=day,
                    workspace_id=workspace,
                    endpoint_id=endpoint,
                    usage=usage,
                    request_costs=_split(usage, rng),
                    byok_usage_inference=byok,
                    requests=max(1, (prompt + completion) // rng.randint(900, 4000)),
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    reasoning_tokens=round(completion * reasoning),
                )
            )
    return rows


def _split(amount: Decimal, rng: random.Random) -> tuple[Decimal, ...]:
    """`amount` as 2-6 request costs of up to 9 decimals that add up to it exactly."""
    if not amount:
        return (Decimal(0),)
    units = int(amount.scaleb(9))
    cuts = sorted(rng.randint(1, units - 1) for _ in range(rng.randint(1, 5))) if units > 1 else []
    bounds = [0, *cuts, units]
    return tuple(Decimal(b - a).scaleb(-9) for a, b in pairwise(bounds) if b > a)


def _float_sum(costs: Iterable[Decimal | float]) -> float:
    """Added as the provider adds them: in binary floating point."""
    total = 0.0
    for cost in costs:
        total += float(cost)
    return total


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenRouter's error envelope."""
    return {"error": {"code": status, "message": message}}


class OpenRouterActivitySimulator(HttpSimulator):
    """The activity endpoint over the synthetic organisation, as of `today` (None: the real UTC day)."""

    source = "openrouter"
    api_key = DEMO_KEY

    def __init__(self, org: SyntheticOrg, *, max_page_size: int | None = None, **server_options: Any) -> None:
        super().__init__(org, max_page_size=max_page_size, **server_options)
        self.today: date | None = None
        self.quiet_days: set[date] = set()  # days with no activity at all
        self.row_overrides: dict[str, Any] = {}  # field -> raw value served in every row (MISSING drops it)
        self.queries: list[dict[str, str]] = []  # the query parameters of each request answered

    @property
    def env(self) -> dict[str, str]:
        return {"OPENROUTER_API_KEY": self.api_key, "OPENROUTER_BASE_URL": f"{self.url}/api/v1"}

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return error_body(status, message)

    @property
    def routes(self) -> dict[str, Route]:
        return {f"GET {PATH}": self.activity}

    # --- what the pipeline must report

    def current_day(self) -> date:
        return self.today or utc_today()

    def window(self) -> tuple[date, date]:
        return served_window(self.current_day())

    def rows(self, day: date) -> list[ActivityRow]:
        return [] if day in self.quiet_days else activity_rows(self.org, day)

    def spend_usd(self, day: date) -> Decimal:
        """The day's exact OpenRouter spend, served or not."""
        return sum((row.usage for row in self.rows(day)), Decimal(0))

    def expected_total_usd(self, day: date) -> Decimal:
        """What a pull today can report for `day`: its spend inside the served window, else nothing."""
        first, end = self.window()
        return self.spend_usd(day) if first <= day < end else Decimal(0)

    def demo_mapping_rows(self) -> list[dict[str, str]]:
        def rule(dimension: str, value: str, team: str, centre: str, product: str) -> dict[str, str]:
            return {"provider": "openrouter", "dimension": dimension, "value": value, "team": team} | {
                "cost_centre": centre,
                "product": product,
            }

        return [
            rule("workspace_id", RESEARCH_WORKSPACE, "research", "CC-500", "Research"),
            rule("workspace_id", SUPPORT_WORKSPACE, "support", "CC-220", "Support Assistant"),
            rule("model", "google/gemini-2.5-flash", "search", "CC-210", "Search"),
            rule("*", "*", "platform", "CC-100", "Developer Platform"),
        ]

    # --- the endpoint

    def activity(self, request: Request) -> Reply:
        self._authorise(request)
        self.queries.append({name: values[-1] for name, values in request.query.items()})
        group_by = request.param("group_by")
        if group_by not in (None, "workspace"):
            raise HttpError(400, f"Invalid group_by {group_by!r}: expected 'workspace'")
        first, end = self.window()
        days = [first + timedelta(days=i) for i in range((end - first).days)]
        raw_day = request.param("date")
        if raw_day is not None:
            try:
                day = date.fromisoformat(raw_day)
            except ValueError:
                raise HttpError(400, "Invalid date format, expected YYYY-MM-DD") from None
            if day not in days:
                raise HttpError(400, OUT_OF_WINDOW)
            days = [day]
        workspace = request.param("workspace_id")
        rows = [r for d in days for r in self.rows(d) if workspace is None or r.workspace_id == workspace]
        items = [_item(r, r.served_usage) | {"workspace_id": r.workspace_id} for r in rows]
        if group_by is None:
            items = _across_workspaces(rows)
        return Reply({"data": [self._override(item) for item in items]}, headers={"Date": self._date_header()})

    def _authorise(self, request: Request) -> None:
        header = request.headers.get("Authorization")
        if header is None:
            raise HttpError(401, "No auth credentials found")
        if header == f"Bearer {INFERENCE_KEY}":
            raise HttpError(403, "Only management keys can perform this operation")
        if header != f"Bearer {self.api_key}":
            raise HttpError(401, "User not found.")

    def _override(self, item: dict[str, Any]) -> dict[str, Any]:
        served = {**item, **self.row_overrides}
        return {k: v for k, v in served.items() if v is not MISSING}

    def _date_header(self) -> str:
        """The simulator's clock: the real time of day, on the simulator's `today`."""
        now = datetime.now(UTC)
        return format_datetime(now + (self.current_day() - now.date()), usegmt=True)


def _item(row: ActivityRow, usage: float) -> dict[str, Any]:
    model, permaslug, provider, *_ = ENDPOINTS[row.endpoint_id]
    return {
        "date": row.day.isoformat(),
        "model": model,
        "model_permaslug": permaslug,
        "endpoint_id": row.endpoint_id,
        "provider_name": provider,
        "usage": usage or 0,
        "byok_usage_inference": float(row.byok_usage_inference) if row.byok_usage_inference else 0,
        "requests": row.requests,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "reasoning_tokens": row.reasoning_tokens,
    }


def _across_workspaces(rows: list[ActivityRow]) -> list[dict[str, Any]]:
    """Rows summed per day and endpoint, as the API answers without `group_by` (floats added as floats)."""
    groups: dict[tuple[date, str], list[ActivityRow]] = {}
    for row in rows:
        groups.setdefault((row.day, row.endpoint_id), []).append(row)
    counts = ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens")
    return [
        _item(group[0], _float_sum([r.served_usage for r in group]))
        | {"byok_usage_inference": _float_sum([r.byok_usage_inference for r in group]) or 0}
        | {c: sum(getattr(r, c) for r in group) for c in counts}
        for group in groups.values()
    ]
