"""Shared fixtures: the bundled provider simulators, and the real clients pointed at them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from aispend_pipeline.simulators import RunningSimulators, start_simulators
from aispend_pipeline.simulators.paging import utc_today
from aispend_pipeline.sources.anthropic.client import AnthropicCostsClient
from aispend_pipeline.sources.openai.client import OpenAICostsClient


@pytest.fixture
def fast_http() -> dict[str, Any]:
    """Client options that keep retries on (they are under test) but never sleep, so the suite stays fast."""
    return {"max_retries": 2, "backoff_seconds": 0, "timeout_seconds": 5}


@pytest.fixture
def sims() -> Iterator[RunningSimulators]:
    with start_simulators(seed=7) as running:
        yield running


@pytest.fixture
def openai_client(sims: RunningSimulators, fast_http: dict[str, Any]) -> OpenAICostsClient:
    return OpenAICostsClient(sims.env["OPENAI_ADMIN_KEY"], sims.env["OPENAI_BASE_URL"], **fast_http)


@pytest.fixture
def anthropic_client(sims: RunningSimulators, fast_http: dict[str, Any]) -> AnthropicCostsClient:
    return AnthropicCostsClient(sims.env["ANTHROPIC_ADMIN_KEY"], sims.env["ANTHROPIC_BASE_URL"], **fast_http)


@pytest.fixture
def last_60_days() -> tuple[date, date]:
    """[start, end) covering the 60 completed UTC days before today."""
    end = utc_today()
    return end - timedelta(days=60), end


@pytest.fixture(autouse=True, scope="session")
def test_dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs made by tests go to a throwaway instance, never to ./.dagster of the checkout."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(tmp_path_factory.mktemp("dagster_home")))
        yield


@pytest.fixture(autouse=True, scope="session")
def no_cloud_metadata_probes() -> Iterator[None]:
    """Any SDK that looks for cloud credentials must fail fast, never probe 169.254.169.254."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("NO_GCE_CHECK", "true")
        patch.setenv("AZURE_TOKEN_CREDENTIALS", "dev")
        yield


def sensor_context():
    """A sensor's context with the warehouse resource as the code location builds it (AISPEND_DUCKDB_PATH)."""
    import os

    import dagster as dg

    from aispend_pipeline.defs.resources import WarehouseResource

    warehouse = WarehouseResource(database=os.environ["AISPEND_DUCKDB_PATH"])
    return dg.build_sensor_context(resources={"warehouse": warehouse})
