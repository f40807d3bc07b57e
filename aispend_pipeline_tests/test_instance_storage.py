"""The persistent instance's event log: a range run's per-partition events written in batches, read back as usual."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._serdes import serialize_value

from aispend_pipeline.instance import EVENT_BATCH_SIZE, TEMPLATE, ensure_dagster_home
from aispend_pipeline.instance.storage import RUN_SHARDS_KEPT, BatchedSqliteEventLogStorage

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-08")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def spend() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset_check(asset=spend, blocking=True)
def spend_is_exact() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.multi_asset(
    specs=[dg.AssetSpec("lines", deps=[spend]), dg.AssetSpec("rollup", deps=["lines"])],
    check_specs=[dg.AssetCheckSpec("rollup_matches", asset="rollup", blocking=True)],
    partitions_def=DAYS,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def lines_and_rollup(context) -> Iterator:  # no hint: Dagster rejects it as the string annotations make it
    """Two assets of one step, as the pipeline's: `rollup` fails after `lines` when the run is tagged so."""
    yield dg.MaterializeResult(asset_key="lines", metadata={"rows": 5})
    if context.run.tags.get("fail") == "rollup":
        raise RuntimeError("rollup failed")
    yield dg.MaterializeResult(asset_key="rollup", metadata={"rows": 2})
    yield dg.AssetCheckResult(asset_key="rollup", check_name="rollup_matches", passed=True)


def run_range(
    home: Path, monkeypatch: pytest.MonkeyPatch, **tags: str
) -> tuple[dg.DagsterInstance, int, dg.ExecuteInProcessResult]:
    """A 7-day single-run backfill in the instance at `home`; also how many events were stored one by one."""
    single = []
    original = SqliteEventLogStorage.store_event
    monkeypatch.setattr(SqliteEventLogStorage, "store_event", lambda self, e: (single.append(e), original(self, e)))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()
    defs = dg.Definitions(assets=[spend, lines_and_rollup], asset_checks=[spend_is_exact])
    job = defs.resolve_implicit_global_asset_job_def()
    tags |= {ASSET_PARTITION_RANGE_START_TAG: "2026-01-01", ASSET_PARTITION_RANGE_END_TAG: "2026-01-07"}
    result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    monkeypatch.setattr(SqliteEventLogStorage, "store_event", original)
    return instance, len(single), result


def index_rows(home: Path) -> dict[str, list[tuple]]:
    """The cross-run index the UI reads (events, asset rows, indexed tags, check executions), without
    what differs between any two runs (run ids, timestamps, serialised events beyond what they point to)."""
    con = sqlite3.connect(home / "history" / "runs" / "index.db")

    def pointed(serialised: str | None) -> tuple:
        """(storage id, event type, partition) of a serialised event record, or of an event log entry."""
        if serialised is None:
            return ()
        record = json.loads(serialised)
        entry = record.get("event_log_entry", record)
        event = entry["dagster_event"]
        return record.get("storage_id"), event["event_type_value"], event.get("partition")

    rows = {
        "events": con.execute(
            "SELECT id, dagster_event_type, step_key, asset_key, partition FROM event_logs ORDER BY id"
        ).fetchall(),
        "assets": [
            (key, pointed(last), run is not None, stamp is not None)
            for key, last, run, stamp in con.execute(
                "SELECT asset_key, last_materialization, last_run_id, last_materialization_timestamp "
                "FROM asset_keys ORDER BY asset_key"
            )
        ],
        "tags": [  # a data version is derived from the run's id when an asset has no code version
            (*row[:3], len(row[3]) if row[2] == "dagster/data_version" else row[3])
            for row in con.execute("SELECT event_id, asset_key, key, value FROM asset_event_tags ORDER BY id")
        ],
        "checks": [
            (*row[:5], pointed(row[5]))
            for row in con.execute(
                "SELECT asset_key, check_name, partition, execution_status, evaluation_event_storage_id, "
                "evaluation_event FROM asset_check_executions ORDER BY id"
            )
        ],
    }
    con.close()
    return rows


def test_instance_home_uses_the_batched_event_log_and_batches_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    ensure_dagster_home()
    assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == EVENT_BATCH_SIZE
    instance, _, _ = run_range(tmp_path / "home", monkeypatch)
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
        instance, stored_one_by_one, _ = run_range(home, monkeypatch)
        key = dg.AssetKey("spend")
        run = instance.get_runs(limit=1)[0]
        events = instance.all_logs(run.run_id)
        results[name] = {
            "partitions": sorted(instance.get_materialized_partitions(key)),
            "planned": sorted(
                e.dagster_event.partition
                for e in events
                if e.dagster_event
                and e.dagster_event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
                and e.dagster_event.asset_key == key
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
    # 3 x 7 planned + 3 x 7 materialisation events go in batches instead of 42 writes
    assert results["stock"]["one_by_one"] >= results["batched"]["one_by_one"] + 42
    assert index_rows(batched_home) == index_rows(stock_home)


def test_a_failed_range_run_leaves_the_same_index_and_partition_status_in_both_event_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rollup` fails after `lines` materialised: the UI shows lines materialised and rollup failed, per day."""
    from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
    statuses = {}
    for name, settings in (("stock", "telemetry:\n  enabled: false\n"), ("batched", TEMPLATE.read_text())):
        home = tmp_path / name
        home.mkdir()
        home.joinpath("dagster.yaml").write_text(settings)
        instance, _, result = run_range(home, monkeypatch, fail="rollup")
        assert not result.success
        statuses[name] = {}
        for key in ("spend", "lines", "rollup"):
            value = get_and_update_asset_status_cache_value(instance, dg.AssetKey(key), DAYS)
            assert value is not None
            statuses[name][key] = (
                sorted(value.deserialize_materialized_partition_subsets(DAYS).get_partition_keys()),
                sorted(value.deserialize_failed_partition_subsets(DAYS).get_partition_keys()),
            )
        statuses[name]["index"] = index_rows(home)
    week = [f"2026-01-0{d}" for d in range(1, 8)]
    assert statuses["batched"]["lines"] == (week, [])
    assert statuses["batched"]["rollup"] == ([], week)
    assert statuses["batched"] == statuses["stock"]


def test_the_event_log_keeps_a_few_databases_open_and_lets_go_of_them_before_a_wipe(tmp_path: Path) -> None:
    storage = BatchedSqliteEventLogStorage(str(tmp_path / "runs"))
    runs = [f"run-{n}" for n in range(RUN_SHARDS_KEPT + 3)]
    for run_id in runs:
        storage.store_event(EventLogEntry(None, "INFO", "hello", run_id, time.time()))  # a log line
    assert set(storage._engines) == {"index", *runs[-RUN_SHARDS_KEPT:]}  # the oldest run databases closed
    assert [len(storage.get_logs_for_run(run_id)) for run_id in runs] == [1] * len(runs)  # reopened to read
    storage.wipe()
    assert set(storage._engines) <= {"index"}  # the run databases closed (the index is emptied, not removed)
    assert not (tmp_path / "runs" / f"{runs[-1]}.db").exists()
    storage.store_event(EventLogEntry(None, "INFO", "again", runs[-1], time.time()))
    assert [e.user_message for e in storage.get_logs_for_run(runs[-1])] == ["again"]
    storage.dispose()


def test_each_partitions_event_is_stored_as_the_stock_serialisation_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
    home = tmp_path / "home"
    home.mkdir()
    home.joinpath("dagster.yaml").write_text(TEMPLATE.read_text())
    batches: list[EventLogEntry] = []
    original = BatchedSqliteEventLogStorage.store_event_batch
    monkeypatch.setattr(
        BatchedSqliteEventLogStorage, "store_event_batch", lambda self, es: (batches.extend(es), original(self, es))
    )
    instance, _, result = run_range(home, monkeypatch)
    assert result.success
    storage = instance.event_log_storage
    assert isinstance(storage, BatchedSqliteEventLogStorage)
    assert len(storage._templates) >= 6  # planned and materialised events of 3 assets went through the templates
    con = sqlite3.connect(home / "history" / "runs" / f"{result.run_id}.db")
    stored = dict(con.execute("SELECT event, partition FROM event_logs WHERE partition IS NOT NULL").fetchall())
    con.close()
    assert len(stored) == len([e for e in batches if e.dagster_event and e.dagster_event.partition]) == 42
    assert set(stored) == {serialize_value(event) for event in batches if event.dagster_event.partition}  # type: ignore[union-attr]


def test_a_watcher_of_a_running_run_sees_each_new_event(tmp_path: Path) -> None:
    """The UI's live run view watches the run database's file for changes."""
    storage = BatchedSqliteEventLogStorage(str(tmp_path / "runs"))
    storage.store_event(EventLogEntry(None, "INFO", "started", "run-1", time.time()))
    seen: list[str] = []

    def watcher(entry: EventLogEntry, _cursor: str) -> None:
        seen.append(entry.user_message)

    storage.watch("run-1", None, watcher)
    try:
        for n in range(3):
            storage.store_event(EventLogEntry(None, "INFO", f"event {n}", "run-1", time.time()))
            deadline = time.time() + 5
            while f"event {n}" not in seen and time.time() < deadline:
                time.sleep(0.05)
            assert seen[-1:] == [f"event {n}"]
        assert seen == ["started", "event 0", "event 1", "event 2"]  # each event once, in order
    finally:
        storage.end_watch("run-1", watcher)
        storage.dispose()
