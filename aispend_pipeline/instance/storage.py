"""Dagster's SQLite event log, writing a batch of events in one transaction per database.

A run over a range of daily partitions records one "planned" and one materialisation event per asset
and day (per-partition status in the UI): a year's backfill of 16 assets is ~11,700 events. The stock
SQLite storage opens a connection and commits (an fsync) per event, twice for asset events (the run's
database and the cross-run index): about 15-25 ms an event, minutes per year backfilled whatever the
data. Dagster hands such events over in batches when `DAGSTER_EVENT_BATCH_SIZE` is set (see
`ensure_dagster_home`), but the stock storage stores a batch one event at a time; this one writes the
run shard's rows in one statement and the index rows in one transaction, and per event it skips what
the stock storage repeats although nothing changed (see `store_event_batch`). The rows written are the
same as the stock storage's, so the UI, sensors and `dagster` CLI read them unchanged.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from dagster import Field, StringSource
from dagster._core.events import (
    ASSET_CHECK_EVENTS,
    ASSET_EVENTS,
    AssetCheckEvaluationPlanned,
    AssetMaterializationPlannedData,
    StepMaterializationData,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS, create_db_conn_string
from dagster._serdes import ConfigurableClassData, serialize_value
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

# Stand-ins for the two fields in which a range run's events of one asset differ (see `_serialize_event`).
PARTITION_MARK = "aispend-partition-mark-7f3c9a"
TIMESTAMP_MARK = 1.2345678901234567e-300
RUN_SHARDS_KEPT = 4  # open run databases kept besides the index (the run being written, a few being read)


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` whose `store_event_batch` is one transaction per database.

    `base_dir` defaults to `$DAGSTER_HOME/history/runs`, where the stock storage keeps its files.
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._present_tables: set[str] = set()
        self._asset_key_index_cols = False
        self._engines: OrderedDict[str, Engine] = OrderedDict()  # before the stock set-up connects
        self._templates: dict[tuple[Any, ...], tuple[EventLogEntry, str]] = {}
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> BatchedSqliteEventLogStorage:
        base_dir = config_value.get("base_dir") or os.path.join(os.environ["DAGSTER_HOME"], "history", "runs")
        return cls(base_dir, inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        """A connection from the shard's engine, kept for the next write instead of a new one per write.

        The stock storage creates an engine and opens, commits and closes a connection per write; closing
        the last connection to a WAL database checkpoints it (two fsyncs), so every event paid ~20 ms and
        SQLAlchemy compiled each statement anew (its cache lives in the engine). The pooled connection
        sits outside any transaction between writes, so other processes (the UI, the daemon) read and
        write as before.
        """
        with self._db_lock:
            engine = self._engines.get(shard)
            if engine is None:
                engine = create_engine(
                    create_db_conn_string(self._base_dir, shard),
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
                event.listen(engine, "connect", _set_pragmas)
                self._engines[shard] = engine
                runs = [name for name in self._engines if name != INDEX_SHARD_NAME]
                for name in runs[:-RUN_SHARDS_KEPT]:
                    self._engines.pop(name).dispose()
            elif shard != INDEX_SHARD_NAME:
                self._engines.move_to_end(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _touch_run(self, run_id: str) -> None:
        """Tell watchers of the run (the UI's live run view) that it has new events: they watch the run
        database's file, which a pooled connection's WAL writes leave untouched until a checkpoint."""
        os.utime(self.path_for_shard(run_id))

    def store_event(self, event: EventLogEntry) -> None:
        super().store_event(event)
        self._touch_run(event.run_id)

    def _dispose_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._dispose_engines()  # before the run databases' files are removed
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()

    def has_table(self, table_name: str) -> bool:
        """Asked for every asset event with tags, and each time a new engine reflects the schema:
        a table once present stays (migrations only add), so that answer is kept."""
        if table_name in self._present_tables:
            return True
        present = super().has_table(table_name)
        if present:
            self._present_tables.add(table_name)
        return present

    def _has_asset_key_index_cols_on_connection(self, conn: Connection) -> bool:
        """Reflected per asset event by the stock storage; kept once true, as for `has_table`."""
        if not self._asset_key_index_cols:
            self._asset_key_index_cols = super()._has_asset_key_index_cols_on_connection(conn)
        return self._asset_key_index_cols

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """The batch's rows in one statement (run shard) and one transaction (index shard).

        Per event, the index gets its row and its indexed tags (one statement for the batch); the
        asset's own row (last run, last materialisation) is written once per asset and event type,
        from the last such event of the batch: each event of a type sets the same columns, so the row
        ends as if every event had been applied in order, as the stock storage does one by one.
        """
        if len({e.run_id for e in events}) != 1 or any(not _batchable(e) for e in events):
            super().store_event_batch(events)  # one at a time, as the stock storage does
            return
        rows = [self._event_to_row(event) for event in events]  # serialised once, for both databases
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        self._touch_run(events[0].run_id)
        with self.index_transaction() as conn:
            returning = SqlEventLogStorageTable.insert().returning(
                SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
            )
            event_ids = [row[0] for row in conn.execute(returning, rows)]
            assets = [(e, i) for e, i in zip(events, event_ids, strict=True) if e.dagster_event_type in ASSET_EVENTS]
            self._store_asset_event_tags(conn, [e for e, _ in assets], [i for _, i in assets])
            last: dict[tuple[Any, Any], int] = {}  # (asset key, event type) -> position of its last event
            for position, (event, _) in enumerate(assets):
                last[(event.dagster_event.asset_key, event.dagster_event_type)] = position  # type: ignore[union-attr]
            for position in sorted(last.values()):
                self._store_asset_event(conn, *assets[position])
        for event, event_id in zip(events, event_ids, strict=True):  # their own tables, after the index rows
            if event.dagster_event_type in ASSET_CHECK_EVENTS:
                self.store_asset_check_event(event, event_id)

    def _event_to_row(self, event: EventLogEntry) -> dict[str, Any]:
        """The stock row (`SqlEventLogStorage._event_to_row`), its event text from `_serialize_event`."""
        dagster_event = event.dagster_event
        return {
            "run_id": event.run_id,
            "event": self._serialize_event(event),
            "dagster_event_type": dagster_event.event_type_value if dagster_event else None,
            "timestamp": self._event_insert_timestamp(event),
            "step_key": dagster_event.step_key if dagster_event else event.step_key,
            "asset_key": dagster_event.asset_key.to_string() if dagster_event and dagster_event.asset_key else None,
            "partition": (dagster_event.partition or None) if dagster_event else None,
        }

    def _serialize_event(self, event: EventLogEntry) -> str:
        """`serialize_value(event)`, without serialising each partition's copy of the same event anew.

        A range run's materialisation (and planned) events of one asset are one event per partition,
        equal but for the partition key and the timestamp: the first is serialised with both replaced
        by marks, and each next one that is equal to it but for those two gets that text with its own
        values put in. Anything else (a different event, an unexpected shape) is serialised as usual.
        """
        marked = _with_marks(event)
        if marked is None:
            return serialize_value(event)
        key = (event.dagster_event_type, event.dagster_event.asset_key)  # type: ignore[union-attr]
        template = self._templates.get(key)
        if template is None or template[0] != marked:
            text = serialize_value(marked)
            if text.count(_PARTITION_JSON) != 1 or text.count(_TIMESTAMP_JSON) != 1:
                return serialize_value(event)
            self._templates[key] = template = (marked, text)
        partition = json.dumps(event.dagster_event.partition)  # type: ignore[union-attr]
        return template[1].replace(_PARTITION_JSON, partition).replace(_TIMESTAMP_JSON, repr(event.timestamp))

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """The stock rows (one per planned partition), with the event serialised once instead of per row."""
        planned = cast(AssetCheckEvaluationPlanned, event.get_dagster_event().event_specific_data)
        keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        common = {
            "asset_key": planned.asset_key.to_string(),
            "check_name": planned.check_name,
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": serialize_value(event),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), [{**common, "partition": key} for key in keys])


_PARTITION_JSON, _TIMESTAMP_JSON = json.dumps(PARTITION_MARK), repr(TIMESTAMP_MARK)


def _with_marks(event: EventLogEntry) -> EventLogEntry | None:
    """The event with the marks for its partition and timestamp, if it is a partition's materialisation
    or planned materialisation; else None."""
    dagster_event = event.dagster_event
    data = dagster_event.event_specific_data if dagster_event else None
    if isinstance(data, StepMaterializationData) and data.materialization.partition:
        data = data._replace(materialization=data.materialization._replace(partition=PARTITION_MARK))
    elif isinstance(data, AssetMaterializationPlannedData) and data.partition and not data.partitions_subset:
        data = data._replace(partition=PARTITION_MARK)
    else:
        return None
    return event._replace(timestamp=TIMESTAMP_MARK, dagster_event=dagster_event._replace(event_specific_data=data))  # type: ignore[union-attr]


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """No fsync per commit: WAL (the stock storage's journal mode) syncs at checkpoints instead. A crash
    of the process loses nothing; a power cut can lose the last commits (the run's latest events),
    never the database."""
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _batchable(event: EventLogEntry) -> bool:
    """Asset and asset-check events only: what `SqliteEventLogStorage.store_event` mirrors to the index."""
    return event.is_dagster_event and event.dagster_event_type in (ASSET_EVENTS | ASSET_CHECK_EVENTS)
