"""The persistent instance's event log: a range run's per-partition events written in batches, read back as usual."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from aispend_pipeline.instance import EVENT_BATCH_SIZE, TEMPLATE, ensure_dagster_home
from aispend_pipeline.instance.storage import BatchedSqliteEventLogStorage

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-08")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def spend() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset_check(asset=spend, blocking=True)
def spend_is_exact() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def run_range(home: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dg.DagsterInstance, int]:
    """A 7-day single-run backfill in the instance at `home`; also how many events were stored one by one."""
    single = []
    original = SqliteEventLogStorage.store_event
    monkeypatch.setattr(SqliteEventLogStorage, "store_event", lambda self, e: (single.append(e), original(self, e)))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()
    job = dg.Definitions(assets=[spend], asset_checks=[spend_is_exact]).resolve_implicit_global_asset_job_def()
    tags = {ASSET_PARTITION_RANGE_START_TAG: "2026-01-01", ASSET_PARTITION_RANGE_END_TAG: "2026-01-07"}
    assert job.execute_in_process(instance=instance, tags=tags).success
    monkeypatch.setattr(SqliteEventLogStorage, "store_event", original)
    return instance, len(single)


def test_instance_home_uses_the_batched_event_log_and_batches_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    ensure_dagster_home()
    assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == EVENT_BATCH_SIZE
    instance, _ = run_range(tmp_path / "home", monkeypatch)
    assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)
    assert (tmp_path / "home" / "history" / "runs" / "index.db").exists()  # where the stock storage keeps it


def test_batched_event_log_stores_what_the_stock_one_stores_in_far_fewer_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
    stock_home, batched_home = tmp_path / "stock", tmp_path / "batched"
    stock_home.mkdir()
    stock_home.joinpath("dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    batched_home.mkdir()
    batched_home.joinpath("dagster.yaml").write_text(TEMPLATE.read_text())

    results = {}
    for name, home in (("stock", stock_home), ("batched", batched_home)):
        instance, stored_one_by_one = run_range(home, monkeypatch)
        key = dg.AssetKey("spend")
        run = instance.get_runs(limit=1)[0]
        events = instance.all_logs(run.run_id)
        results[name] = {
            "partitions": sorted(instance.get_materialized_partitions(key)),
            "planned": sorted(
                e.dagster_event.partition
                for e in events
                if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
            ),
            "latest": instance.get_latest_materialization_event(key).asset_materialization.partition,  # type: ignore[union-attr]
            "metadata": instance.get_latest_materialization_event(key).asset_materialization.metadata,  # type: ignore[union-attr]
            "check": instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(key, "spend_is_exact"), limit=1
            )[0].status,
        }
        results[name]["one_by_one"] = stored_one_by_one
    assert results["batched"]["partitions"] == [f"2026-01-0{d}" for d in range(1, 8)]
    assert results["batched"]["planned"] == results["batched"]["partitions"]
    for field in ("partitions", "planned", "latest", "metadata", "check"):
        assert results["batched"][field] == results["stock"][field], field
    # 7 planned + 7 materialisation events go in two batches instead of 14 writes
    assert results["stock"]["one_by_one"] >= results["batched"]["one_by_one"] + 14
