"""What every source's simulator provides, so that the demo and the tests start them from the registry.

A simulator serves the synthetic organisation in its provider's own wire format on 127.0.0.1, says which
settings point the real client at it (`env`), what the pipeline must report per day
(`expected_total_usd`), and which org-mapping rows attribute its keys to the demo's teams.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

from aispend_pipeline.simulators.org import SyntheticOrg
from aispend_pipeline.simulators.server import ErrorBody, Route, SimServer


class SourceSimulator:
    """One provider's billing API. Subclasses set `source` and implement the methods below."""

    source: ClassVar[str] = ""

    def __init__(self, org: SyntheticOrg, *, max_page_size: int | None = None) -> None:
        self.org = org
        self.max_page_size = max_page_size  # tests force short pages with it

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def env(self) -> dict[str, str]:
        """Settings (credentials included) that point the real client at this simulator."""
        raise NotImplementedError

    def request_count(self, path: str | None = None) -> int:
        raise NotImplementedError

    def expected_total_usd(self, day: date) -> Decimal:
        """The AI spend of `day` the pipeline must report for this source, exactly."""
        raise NotImplementedError

    def demo_mapping_rows(self) -> list[dict[str, str]]:
        """`org_mapping.csv` rows (provider, dimension, value, team, cost_centre, product) for the demo."""
        return []

    def mapping_row(self, dimension: str, value: str, team: str, cost_centre: str, product: str) -> dict[str, str]:
        """One open-ended `org_mapping.csv` rule of this simulator's provider."""
        return {"provider": self.source, "dimension": dimension, "value": value, "team": team} | {
            "cost_centre": cost_centre,
            "product": product,
        }


class HttpSimulator(SourceSimulator):
    """A simulator served by one `SimServer`: subclasses give `routes` and the provider's `error_body`."""

    def __init__(self, org: SyntheticOrg, *, max_page_size: int | None = None, **server_options: Any) -> None:
        super().__init__(org, max_page_size=max_page_size)
        self.server = SimServer(self.routes, self.error_body, **server_options)

    @property
    def routes(self) -> Mapping[str, Route]:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"message": message}}

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def fail_next(
        self,
        status: int,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        times: int = 1,
        path: str | None = None,
    ) -> None:
        """Answer the next `times` requests (for `path` only, if given) with `status` (default body: the
        provider's error envelope)."""
        self.server.fail_next(status, headers, body, times, path)

    def request_count(self, path: str | None = None) -> int:
        return self.server.request_count(path)


__all__ = ["ErrorBody", "HttpSimulator", "SourceSimulator"]
