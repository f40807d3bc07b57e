"""Every query of the README's analyst cookbook runs against a pipeline-built DuckDB file.

A question whose heading says "empty until" or "may be empty" needs data the simulated organisation
does not have (seat lines of a source not configured here, a spike); every other query must answer.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb

README = Path(__file__).resolve().parents[2] / "README.md"
FIRST, LAST = date(2026, 9, 25), date(2026, 10, 14)  # three weeks across a month end: WoW and monthly answers
MAY_BE_EMPTY = re.compile(r"empty\s+until|may\s+be\s+empty")


def cookbook() -> list[tuple[str, str]]:
    """(question, sql) for each question of the README's "Analyst cookbook" section."""
    text = README.read_text()
    section = text.split("\n## Analyst cookbook\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"\*\*(\d+\..*?)\n\n```sql\n(.*?)```", section, re.S)


def test_the_cookbook_has_ten_questions_each_with_its_sql():
    questions = cookbook()
    assert [q.split(".")[0] for q, _ in questions] == [str(n) for n in range(1, 11)]


def test_every_cookbook_query_runs_on_a_pipeline_built_file(pipeline):
    ok, reason = pipeline.run(FIRST, LAST)
    assert ok, reason
    con = duckdb.connect(str(pipeline.db.path), read_only=True)  # as the cookbook tells analysts to
    try:
        for question, sql in cookbook():
            try:
                rows = con.execute(sql).fetchall()
            except duckdb.Error as exc:
                raise AssertionError(f"cookbook question {question!r} fails: {exc}") from None
            if not MAY_BE_EMPTY.search(question):
                assert rows, f"cookbook question {question!r} answers nothing on a realistic file"
    finally:
        con.close()
