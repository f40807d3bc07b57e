"""What the UI shows after a range run on the persistent instance: each day of each asset, and the checks."""

from __future__ import annotations

from datetime import date

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from aispend_pipeline.cli import materialize
from aispend_pipeline.defs.partitions import daily_partitions
from aispend_pipeline.defs.run import CHECK_SPECS, SPECS
from aispend_pipeline.instance.storage import BatchedSqliteEventLogStorage
from aispend_pipeline.sources.registry import SOURCES

FIRST, LAST = date(2026, 10, 1), date(2026, 10, 3)
DAYS = ["2026-10-01", "2026-10-02", "2026-10-03"]
OPENAI_RAW = dg.AssetKey(["raw", "openai_costs"])


def partition_status(instance: dg.DagsterInstance, key: dg.AssetKey) -> tuple[list[str], list[str]]:
    """(materialised, failed) days of the asset in the range, as the UI's partition bar reads them."""
    value = get_and_update_asset_status_cache_value(instance, key, daily_partitions)
    assert value is not None, key
    materialised = value.deserialize_materialized_partition_subsets(daily_partitions).get_partition_keys()
    failed = value.deserialize_failed_partition_subsets(daily_partitions).get_partition_keys()
    return sorted(set(materialised) & set(DAYS)), sorted(set(failed) & set(DAYS))


def test_a_range_run_shows_each_day_of_each_asset_materialised_and_every_check(pipeline) -> None:
    ok, reason = materialize(FIRST, LAST, log_level="ERROR")  # the persistent instance (the fixture's DAGSTER_HOME)
    assert ok, reason
    instance = dg.DagsterInstance.get()
    assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)
    assert len(SPECS) == len(SOURCES) + 8
    for spec in SPECS:
        assert partition_status(instance, spec.key) == (DAYS, []), spec.key
    run = instance.get_runs(limit=1)[0]
    for check in CHECK_SPECS:
        history = instance.event_log_storage.get_asset_check_execution_history(check.key, limit=1)
        assert history, check.key
        assert history[0].run_id == run.run_id, check.key
        assert history[0].status in (AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED)
        assert (
            history[0].event is not None
            and history[0].event.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )


def test_a_failing_source_shows_its_days_failed_and_the_others_materialised(pipeline, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-WRONG-0123456789abcdef")
    ok, reason = materialize(FIRST, LAST, log_level="CRITICAL")
    assert not ok and "401" in reason
    instance = dg.DagsterInstance.get()
    assert partition_status(instance, OPENAI_RAW) == ([], DAYS)
    for spec in SPECS:
        if spec.key != OPENAI_RAW:
            assert partition_status(instance, spec.key) == (DAYS, []), spec.key
