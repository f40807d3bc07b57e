"""A deterministic synthetic organisation whose spend the provider simulators serve.

Every amount is a function of (seed, provider, day, line key) only, never of the requested range, so any
range, page size or grouping reproduces the same numbers, and tests can compare the pipeline against
`expected_total_usd`. Weekends are quieter, spend grows slowly, and `proj_support_bot` spikes about 6x
on `spike_day` so that anomaly detection has something to find.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from aispend_pipeline.core.money import cents_to_usd
from aispend_pipeline.simulators.paging import utc_today

GROWTH_EPOCH = date(2026, 1, 1)
GROWTH_PER_DAY = 0.001
WEEKDAY_FACTOR = (1.0, 1.05, 1.06, 1.03, 0.94, 0.36, 0.32)  # Monday .. Sunday
SPIKE_PROJECT = "proj_support_bot"
SPIKE_FACTOR = 6.0

# line item -> (dollars per 1M tokens or None when not billed by token, share of a project's spend)
OPENAI_LINES: dict[str, tuple[float | None, float]] = {
    "gpt-4o-2024-08-06, input": (2.50, 0.30),
    "gpt-4o-2024-08-06, output": (10.00, 0.45),
    "gpt-4o-2024-08-06, cached input": (1.25, 0.05),
    "gpt-4o-mini-2024-07-18, input": (0.15, 0.25),
    "gpt-4o-mini-2024-07-18, output": (0.60, 0.35),
    "text-embedding-3-small, input": (0.02, 0.20),
    "web search tool calls": (None, 1.0),
}
_GPT4O = ("gpt-4o-2024-08-06, input", "gpt-4o-2024-08-06, output", "gpt-4o-2024-08-06, cached input")
_MINI = ("gpt-4o-mini-2024-07-18, input", "gpt-4o-mini-2024-07-18, output")
_EMBED = ("text-embedding-3-small, input",)
# project (None: org-level line) -> (dollars on a weekday, chance a line appears on a day, line items)
OPENAI_PROJECTS: dict[str | None, tuple[float, float, tuple[str, ...]]] = {
    "proj_search": (70.0, 1.0, _MINI + _EMBED),
    "proj_support_bot": (45.0, 1.0, _GPT4O),
    "proj_data_platform": (60.0, 0.95, _GPT4O[:2] + _MINI + _EMBED),
    "proj_growth": (40.0, 0.9, _GPT4O + _MINI),
    "proj_sandbox": (8.0, 0.6, _GPT4O + _MINI + _EMBED),
    None: (6.0, 1.0, ("web search tool calls",)),
}

_SONNET, _HAIKU = ("claude-sonnet-4-5", "Claude Sonnet 4.5", 0.8), ("claude-haiku-4-5", "Claude Haiku 4.5", 0.2)
_TOKEN_KINDS = (  # description suffix, token_type, share of a model's spend
    ("Input Tokens", "uncached_input_tokens", 0.30),
    ("Output Tokens", "output_tokens", 0.45),
    ("Cache Read", "cache_read_input_tokens", 0.10),
    ("Cache Write (5m)", "cache_creation.ephemeral_5m_input_tokens", 0.15),
)
# (description, cost_type, model, service_tier, token_type, context_window) -> (share of budget, chance factor)
ANTHROPIC_LINES: dict[tuple[str, str, str | None, str | None, str | None, str | None], tuple[float, float]] = {
    **{
        (f"{name} Usage - {suffix}", "tokens", model, "standard", token_type, "0-200k"): (model_share * share, 1.0)
        for model, name, model_share in (_SONNET, _HAIKU)
        for suffix, token_type, share in _TOKEN_KINDS
    },
    ("Code Execution Usage", "code_execution", None, None, None, None): (0.03, 0.6),
    ("Web Search Usage", "web_search", None, None, None, None): (0.02, 0.6),
}
# (model, token_type) -> list price in dollars per 1M tokens: the usage report's tokens are cost / price
ANTHROPIC_PRICES: dict[tuple[str, str], float] = {
    **{
        (model, token_type): price
        for model, prices in (
            ("claude-sonnet-4-5", (3.0, 15.0, 0.30, 3.75)),
            ("claude-haiku-4-5", (1.0, 5.0, 0.10, 1.25)),
        )
        for (_, token_type, _), price in zip(_TOKEN_KINDS, prices, strict=True)
    },
}
# workspace (None: the default workspace) -> (dollars on a weekday, chance a line appears on a day)
ANTHROPIC_WORKSPACES: dict[str | None, tuple[float, float]] = {
    "wrkspc_research": (110.0, 1.0),
    "wrkspc_support": (70.0, 1.0),
    "wrkspc_platform": (45.0, 0.9),
    None: (12.0, 0.7),
}


@dataclass(frozen=True)
class OpenAILine:
    project_id: str | None
    line_item: str | None
    amount_usd: Decimal
    tokens: int | None


@dataclass(frozen=True)
class AnthropicLine:
    workspace_id: str | None
    description: str | None
    cost_type: str | None
    model: str | None
    service_tier: str | None
    token_type: str | None
    context_window: str | None
    amount_cents: Decimal

    @property
    def amount_usd(self) -> Decimal:
        return cents_to_usd(self.amount_cents)

    @property
    def tokens(self) -> int | None:
        """Tokens billed by this line at the list price (None for non-token costs)."""
        price = ANTHROPIC_PRICES.get((self.model or "", self.token_type or ""))
        return None if price is None else round(self.amount_usd * 1_000_000 / Decimal(str(price)))


@dataclass(frozen=True)
class OpenAIUsage:
    """One `/organization/usage/completions` result: a project's tokens of one model on one day."""

    project_id: str | None
    model: str | None
    input_tokens: int
    input_cached_tokens: int
    input_uncached_tokens: int
    output_tokens: int
    num_model_requests: int


@dataclass(frozen=True)
class AnthropicUsage:
    """One `/organizations/usage_report/messages` result: a workspace's tokens of one model on one day."""

    workspace_id: str | None
    model: str | None
    uncached_input_tokens: int
    cache_read_input_tokens: int
    cache_creation_5m_input_tokens: int
    cache_creation_1h_input_tokens: int
    output_tokens: int


class SyntheticOrg:
    def __init__(self, seed: int = 7, spike_day: date | None = None) -> None:
        self.seed = seed
        self.spike_day = spike_day if spike_day is not None else utc_today() - timedelta(days=5)

    def openai_lines(self, day: date) -> list[OpenAILine]:
        lines = []
        for project, (budget, activity, items) in OPENAI_PROJECTS.items():
            spike = SPIKE_FACTOR if project == SPIKE_PROJECT and day == self.spike_day else 1.0
            shares = sum(OPENAI_LINES[item][1] for item in items)
            for item in items:
                price, share = OPENAI_LINES[item]
                amount = self._amount("openai", day, f"{project}|{item}", budget * share / shares * spike, activity)
                if amount is not None:
                    tokens = None if price is None else round(amount * 1_000_000 / Decimal(str(price)))
                    lines.append(OpenAILine(project, item, amount, tokens))
        return lines

    def anthropic_lines(self, day: date) -> list[AnthropicLine]:
        lines = []
        for workspace, (budget, activity) in ANTHROPIC_WORKSPACES.items():
            for fields, (share, chance) in ANTHROPIC_LINES.items():
                key = f"{workspace}|{fields[0]}"
                cents = self._amount("anthropic", day, key, budget * share * 100, activity * chance)
                if cents is not None:
                    lines.append(AnthropicLine(workspace, *fields, amount_cents=cents))
        return lines

    def openai_usage(self, day: date) -> list[OpenAIUsage]:
        """Completions tokens per project and model, exactly the tokens of the day's cost lines.

        Embedding models are not completions (their tokens stay on the cost lines' quantity only).
        """
        tokens: dict[tuple[str | None, str], dict[str, int]] = {}
        for line in self.openai_lines(day):
            model, _, kind = (line.line_item or "").partition(", ")
            if line.tokens is None or not kind or model.startswith("text-embedding"):
                continue
            tokens.setdefault((line.project_id, model), {}).setdefault(kind, 0)
            tokens[(line.project_id, model)][kind] += line.tokens
        usage = []
        for (project, model), kinds in tokens.items():
            uncached, cached, output = kinds.get("input", 0), kinds.get("cached input", 0), kinds.get("output", 0)
            requests = max(1, (uncached + cached + output) // 2500)
            usage.append(OpenAIUsage(project, model, uncached + cached, cached, uncached, output, requests))
        return usage

    def anthropic_usage(self, day: date) -> list[AnthropicUsage]:
        """Message tokens per workspace and model, exactly the tokens of the day's cost lines."""
        fields = {
            "uncached_input_tokens": "uncached_input_tokens",
            "output_tokens": "output_tokens",
            "cache_read_input_tokens": "cache_read_input_tokens",
            "cache_creation.ephemeral_5m_input_tokens": "cache_creation_5m_input_tokens",
            "cache_creation.ephemeral_1h_input_tokens": "cache_creation_1h_input_tokens",
        }
        tokens: dict[tuple[str | None, str], dict[str, int]] = {}
        for line in self.anthropic_lines(day):
            if line.tokens is None or line.model is None or line.token_type not in fields:
                continue
            counts = tokens.setdefault((line.workspace_id, line.model), dict.fromkeys(fields.values(), 0))
            counts[fields[line.token_type]] += line.tokens
        return [AnthropicUsage(workspace, model, **counts) for (workspace, model), counts in tokens.items()]

    def expected_total_usd(self, provider: str, day: date) -> Decimal:
        """The day's total in dollars, as the pipeline must report it (Anthropic cents / 100)."""
        return sum((line.amount_usd for line in self._lines(provider, day)), Decimal(0))

    def expected_lines(self, provider: str, day: date) -> int:
        """Result rows served for the day when grouped by project/line item or workspace/description."""
        return len(self._lines(provider, day))

    def _lines(self, provider: str, day: date) -> list[OpenAILine] | list[AnthropicLine]:
        if provider == "openai":
            return self.openai_lines(day)
        if provider == "anthropic":
            return self.anthropic_lines(day)
        raise ValueError(f"unknown provider {provider!r}; expected 'openai' or 'anthropic'")

    def _amount(self, provider: str, day: date, key: str, base: float, activity: float) -> Decimal | None:
        """A 6-decimal amount for one line on one day, or None when the line has no usage that day."""
        rng = random.Random(f"{self.seed}|{provider}|{day.isoformat()}|{key}")
        if rng.random() >= activity:
            return None
        growth = max(1.0 + GROWTH_PER_DAY * (day - GROWTH_EPOCH).days, 0.5)
        value = base * WEEKDAY_FACTOR[day.weekday()] * growth * rng.uniform(0.85, 1.15)
        return Decimal(round(value * 1_000_000)).scaleb(-6)
