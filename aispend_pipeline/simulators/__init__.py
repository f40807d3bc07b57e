"""Local simulators of the provider billing APIs, so the demo and the tests run the real clients offline.

`with start_simulators() as sims:` then apply `sims.env` to point the real clients at 127.0.0.1, compare
results with `sims.org.expected_total_usd(...)`, and inject faults with `sims.openai.fail_next(429, ...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from aispend_pipeline.simulators import anthropic, openai
from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.simulators.server import SimServer

OPENAI_DEMO_KEY = "sk-admin-simulator"
ANTHROPIC_DEMO_KEY = "sk-ant-admin-simulator"

__all__ = ["RunningSimulators", "SimServer", "SyntheticOrg", "start_simulators"]


@dataclass
class RunningSimulators:
    org: SyntheticOrg
    openai: SimServer
    anthropic: SimServer

    @property
    def env(self) -> dict[str, str]:
        """Settings that point the real clients at the simulators."""
        return {
            "OPENAI_ADMIN_KEY": OPENAI_DEMO_KEY,
            "OPENAI_BASE_URL": f"{self.openai.url}/v1",
            "ANTHROPIC_ADMIN_KEY": ANTHROPIC_DEMO_KEY,
            "ANTHROPIC_BASE_URL": self.anthropic.url,
        }

    def stop(self) -> None:
        self.openai.stop()
        self.anthropic.stop()

    def __enter__(self) -> RunningSimulators:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_simulators(
    *, seed: int = 7, spike_day: date | None = None, max_buckets_per_page: int | None = None
) -> RunningSimulators:
    """Start one server per provider on ephemeral ports; `max_buckets_per_page` forces short pages in tests."""
    org = SyntheticOrg(seed=seed, spike_day=spike_day)
    apis = (
        (openai.OpenAICostsSimulator(org, OPENAI_DEMO_KEY, max_buckets_per_page), openai.error_body),
        (anthropic.AnthropicCostsSimulator(org, ANTHROPIC_DEMO_KEY, max_buckets_per_page), anthropic.error_body),
    )
    servers = [SimServer(api.routes, error_body) for api, error_body in apis]
    try:
        for server in servers:
            server.start()
    except OSError:
        for server in servers:
            server.stop()
        raise
    return RunningSimulators(org, *servers)
