"""Dagster's SQLite event log, writing a batch of events in one transaction per database.

A run over a range of daily partitions records one "planned" and one materialisation event per asset
and day (per-partition status in the UI): a year's backfill of 15 assets is ~11,000 events. The stock
SQLite storage opens a connection and commits (an fsync) per event, twice for asset events (the run's
database and the cross-run index): about 15-25 ms an event, minutes per year backfilled whatever the
data. Dagster hands such events over in batches when `DAGSTER_EVENT_BATCH_SIZE` is set (see
`ensure_dagster_home`), but the stock storage stores a batch one event at a time; this one writes the
run shard's rows in one transaction and the index rows in another. The rows written are the same as
the stock storage's, so the UI, sensors and `dagster` CLI read them unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from dagster import Field, StringSource
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._serdes import ConfigurableClassData


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` whose `store_event_batch` is one transaction per database.

    `base_dir` defaults to `$DAGSTER_HOME/history/runs`, where the stock storage keeps its files.
    """

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> BatchedSqliteEventLogStorage:
        base_dir = config_value.get("base_dir") or os.path.join(os.environ["DAGSTER_HOME"], "history", "runs")
        return cls(base_dir, inst_data=inst_data)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if len({e.run_id for e in events}) != 1 or any(not _batchable(e) for e in events):
            super().store_event_batch(events)  # one at a time, as the stock storage does
            return
        inserts = [self.prepare_insert_event(event) for event in events]  # serialised once, for both databases
        with self.run_connection(events[0].run_id) as conn:
            for insert in inserts:
                conn.execute(insert)
        checks = []
        with self.index_transaction() as conn:
            for event, insert in zip(events, inserts, strict=True):
                with db_result(conn, insert) as result:
                    event_id = result.inserted_primary_key[0]
                if event.dagster_event_type in ASSET_EVENTS:
                    self._store_asset_event_tags(conn, [event], [event_id])
                    self._store_asset_event(conn, event, event_id)
                else:
                    checks.append((event, event_id))
        for event, event_id in checks:  # their own tables, written after the index rows they refer to
            self.store_asset_check_event(event, event_id)


def _batchable(event: EventLogEntry) -> bool:
    """Asset and asset-check events only: what `SqliteEventLogStorage.store_event` mirrors to the index."""
    return event.is_dagster_event and event.dagster_event_type in (ASSET_EVENTS | ASSET_CHECK_EVENTS)
