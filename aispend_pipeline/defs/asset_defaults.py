"""What every asset shares: daily UTC partitions, single-run backfills, and its owners."""

from typing import Any

from aispend_pipeline.defs.partitions import daily_partitions, single_run_backfill

OWNERS = ["team:finops"]

DAILY_ASSET: dict[str, Any] = {
    "partitions_def": daily_partitions,
    "backfill_policy": single_run_backfill,
    "owners": OWNERS,
}
