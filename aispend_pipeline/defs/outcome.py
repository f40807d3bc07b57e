"""What a step of the run produced for one asset: its metadata and its checks, reported after publishing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg


@dataclass
class CheckOutcome:
    """One asset check's result. A failed blocking check stops the publish; a warning never does."""

    name: str
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    blocking: bool = False
    warn: bool = False

    def result(self, asset: dg.AssetKey) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            asset_key=asset,
            check_name=self.name,
            passed=self.passed,
            severity=dg.AssetCheckSeverity.WARN if self.warn else dg.AssetCheckSeverity.ERROR,
            metadata=self.metadata,
        )


@dataclass
class StepOutcome:
    """An asset's materialisation (metadata) and the checks evaluated on the run's copy before publishing."""

    key: dg.AssetKey
    metadata: dict[str, Any]
    checks: list[CheckOutcome] = field(default_factory=list)

    def failed_blocking_checks(self) -> list[CheckOutcome]:
        return [c for c in self.checks if c.blocking and not c.passed]
