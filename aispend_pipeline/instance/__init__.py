"""The persistent Dagster instance every entry point shares, so any run shows in the UI's history.

`DAGSTER_HOME` when set; otherwise `.dagster` in the working directory (beside `data/` and `seeds/`).
The instance settings (`dagster.yaml`: run queue, run monitoring, retention) are copied there once.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

DEFAULT_DAGSTER_HOME = ".dagster"
# Dagster hands a range run's per-partition events to the event log in batches of this many
# (storage.BatchedSqliteEventLogStorage writes each batch in one transaction).
EVENT_BATCH_SIZE = "1000"
TEMPLATE = Path(__file__).with_name("dagster.yaml")
EVENT_LOG_CLASS_LINE = "  class: BatchedSqliteEventLogStorage"


def ensure_dagster_home() -> Path:
    """The instance directory (created, with its dagster.yaml), exported as DAGSTER_HOME."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():  # the event log's directory written out, so the instance opens from anywhere
        text = TEMPLATE.read_text()
        runs = json.dumps(str(home / "history" / "runs"))
        settings.write_text(
            text.replace(EVENT_LOG_CLASS_LINE, f"{EVENT_LOG_CLASS_LINE}\n  config:\n    base_dir: {runs}")
        )
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)  # read by Dagster at each event
    return home


if __name__ == "__main__":  # `python -m aispend_pipeline.instance`: print the directory (the Makefile's `ui`)
    sys.stdout.write(f"{ensure_dagster_home()}\n")
