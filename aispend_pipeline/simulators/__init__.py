"""Local simulators of the providers' billing APIs, so the demo and the tests run the real clients offline.

Each source's simulator lives in its own folder (`sources/<name>/simulator.py`) and is started from the
registry: `with start_simulators() as sims:` then apply `sims.env` to point the real clients at 127.0.0.1,
compare results with `sims.expected_total_usd("openai", day)`, and inject faults with
`sims.openai.fail_next(429, ...)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from aispend_pipeline.simulators.base import HttpSimulator, SourceSimulator
from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.simulators.server import SimServer

__all__ = ["HttpSimulator", "RunningSimulators", "SimServer", "SourceSimulator", "SyntheticOrg", "start_simulators"]


class RunningSimulators:
    """The started simulators by source name (`sims["aws"]` or `sims.aws`), sharing one organisation."""

    def __init__(self, org: SyntheticOrg, simulators: dict[str, SourceSimulator]) -> None:
        self.org = org
        self.simulators = simulators

    def __getitem__(self, source: str) -> SourceSimulator:
        return self.simulators[source]

    def __getattr__(self, source: str) -> SourceSimulator:
        try:
            return self.__dict__["simulators"][source]
        except KeyError:
            raise AttributeError(source) from None

    @property
    def env(self) -> dict[str, str]:
        """Settings that point every real client at its simulator."""
        return {name: value for sim in self.simulators.values() for name, value in sim.env.items()}

    def expected_total_usd(self, source: str, day: date) -> Decimal:
        return self.simulators[source].expected_total_usd(day)

    def request_counts(self) -> dict[str, int]:
        return {name: sim.request_count() for name, sim in self.simulators.items()}

    def demo_mapping_rows(self) -> list[dict[str, str]]:
        return [row for sim in self.simulators.values() for row in sim.demo_mapping_rows()]

    def stop(self) -> None:
        for sim in self.simulators.values():
            sim.stop()

    def __enter__(self) -> RunningSimulators:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def simulator_class(path: str) -> type[SourceSimulator]:
    """The class a source's `simulator` names as `module:Class` (imported only when simulators start)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def start_simulators(
    *,
    seed: int = 7,
    spike_day: date | None = None,
    max_page_size: int | None = None,
    sources: Iterable[str] | None = None,
) -> RunningSimulators:
    """Start the simulator of every registered source (or of `sources`) on ephemeral ports.

    `max_page_size` forces short pages in tests.
    """
    from aispend_pipeline.sources.registry import SOURCES

    org = SyntheticOrg(seed=seed, spike_day=spike_day)
    wanted = set(sources) if sources is not None else None
    started: dict[str, SourceSimulator] = {}
    try:
        for source in SOURCES:
            if source.simulator and (wanted is None or source.name in wanted):
                sim = simulator_class(source.simulator)(org, max_page_size=max_page_size)
                sim.start()
                started[source.name] = sim
    except BaseException:
        for sim in started.values():
            sim.stop()
        raise
    return RunningSimulators(org, started)
