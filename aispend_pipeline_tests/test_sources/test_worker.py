"""A streaming source's pull in a worker process: the same staged rows as in the run's thread, its errors
reported as clearly, a worker that dies named with its exit code."""

from __future__ import annotations

import os
from datetime import date, timedelta

import pandas as pd
import pytest

from aispend_pipeline.errors import AispendError
from aispend_pipeline.simulators import RunningSimulators
from aispend_pipeline.sources.aws.source import RAW_TABLE as AWS_TABLE
from aispend_pipeline.sources.aws.source import CostExplorerResource
from aispend_pipeline.sources.base import FrameSink, RawPull, RowSink
from aispend_pipeline.sources.openai.source import RAW_TABLE, USAGE_TABLE, OpenAIResource
from aispend_pipeline.sources.worker import pull_in_worker


def openai(sims: RunningSimulators, **settings: str) -> OpenAIResource:
    return OpenAIResource(
        **({"admin_key": sims.env["OPENAI_ADMIN_KEY"], "base_url": sims.env["OPENAI_BASE_URL"]} | settings)
    )


def test_a_worker_stages_the_same_rows_and_requests_as_the_thread(
    sims: RunningSimulators, last_60_days: tuple[date, date]
) -> None:
    in_thread, in_worker = FrameSink(), FrameSink()
    pulled = openai(sims).pull_into(*last_60_days, in_thread)
    worked = pull_in_worker(openai(sims), "openai", *last_60_days, in_worker)

    assert worked.frame is None and worked.api_requests == pulled.api_requests > 0
    assert worked.rounding_usd == pulled.rounding_usd and worked.days == pulled.days
    for table in (RAW_TABLE, USAGE_TABLE):
        assert len(in_worker.frame(table)) == len(in_thread.frame(table)) > 0
        pd.testing.assert_frame_equal(in_worker.frame(table), in_thread.frame(table))


def test_a_worker_reads_the_run_environment_of_the_moment(
    sims: RunningSimulators, monkeypatch: pytest.MonkeyPatch
) -> None:
    # boto3 reads its credentials from the environment: a worker sees the run's, not the forkserver's.
    for name, value in sims.env.items():
        monkeypatch.setenv(name, value)
    day = date(2026, 10, 6)
    resource = CostExplorerResource(enabled="true", endpoint=sims.env["AWS_ENDPOINT_URL_COST_EXPLORER"])
    sink = FrameSink()
    pull_in_worker(resource, "aws", day, day + timedelta(days=1), sink)
    assert len(sink.frame(AWS_TABLE)) > 0
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    with pytest.raises(AispendError, match=r"^aws 2026-10-06\.\.2026-10-06: AWS refused .*UnrecognizedClient"):
        pull_in_worker(resource, "aws", day, day + timedelta(days=1), FrameSink())


def test_a_failing_pull_in_a_worker_gives_the_same_message_as_in_a_thread(
    sims: RunningSimulators, last_60_days: tuple[date, date]
) -> None:
    wrong = openai(sims, admin_key="sk-admin-wrong")
    with pytest.raises(AispendError) as in_thread:
        wrong.pull_into(*last_60_days, FrameSink())
    with pytest.raises(AispendError) as in_worker:
        pull_in_worker(wrong, "openai", *last_60_days, FrameSink())
    assert str(in_worker.value) == str(in_thread.value) and "OPENAI_ADMIN_KEY" in str(in_worker.value)
    assert "sk-admin-wrong" not in str(in_worker.value)


class DyingResource(OpenAIResource):
    """A pull whose process dies half-way (killed, out of memory)."""

    def pull_into(self, start: date, end: date, sink: RowSink) -> RawPull:
        sink.append(RAW_TABLE, {"usage_date": [start], "project_id": ["p"], "line_item": ["x"]}, None)
        os._exit(9)


def test_a_worker_that_dies_is_reported_with_its_exit_code(last_60_days: tuple[date, date]) -> None:
    sink = FrameSink()
    with pytest.raises(AispendError, match=r"^openai: the pull's worker process stopped .*exit code 9"):
        pull_in_worker(DyingResource(admin_key="sk-admin-x"), "openai", *last_60_days, sink)
