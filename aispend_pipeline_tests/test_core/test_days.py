"""Daily buckets merged across pages: nothing counted twice, nothing serialised that comes once."""

from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace

import pytest

from aispend_pipeline.core import days

D1, D2, D3 = date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)
A, B, C = {"Keys": ["a"], "Amount": "1.5"}, {"Keys": ["b"], "Amount": "2"}, {"Keys": ["c"], "Amount": "0.25"}


def test_a_day_split_across_pages_counts_each_result_once():
    merged = days.merge_daily_buckets("aws", [(D1, [A, B]), (D2, [A]), (D2, [A, C]), (D1, [B, C])], D1, D3)
    assert merged == {D1: [A, B, C], D2: [A, C]}


def test_results_of_a_day_that_comes_once_are_kept_as_given_and_never_serialised(monkeypatch: pytest.MonkeyPatch):
    # Hundreds of accounts' groups a day: canonical JSON is built only for a day that comes again.
    dumped = []

    def dumps(value: object, **options: object) -> str:
        dumped.append(value)
        return json.dumps(value, **options)

    monkeypatch.setattr(days, "json", SimpleNamespace(dumps=dumps))
    merged = days.merge_daily_buckets("aws", [(D1, [A, A, B]), (D2, [C])], D1, D3)
    assert merged == {D1: [A, A, B], D2: [C]}, "two identical groups of one answer are two lines"
    assert dumped == []
    days.merge_daily_buckets("aws", [(D1, [A]), (D1, [A, B])], D1, D3)
    assert len(dumped) == 3
