"""Settings are validated before a run writes anything: each problem named with what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from aispend_pipeline.seed_files import vendor_slug
from aispend_pipeline.settings import SettingsError, restatement_days, settings_problems, validate_settings


def env_with(tmp_path: Path, **values: str) -> dict[str, str]:
    seeds = tmp_path / "seeds"
    seeds.mkdir(exist_ok=True)
    return {"AISPEND_SEEDS_DIR": str(seeds), "AISPEND_DUCKDB_PATH": str(tmp_path / "data" / "a.duckdb"), **values}


def test_good_settings_have_no_problem(tmp_path: Path) -> None:
    assert settings_problems(env_with(tmp_path, AISPEND_RESTATEMENT_DAYS="0")) == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"AISPEND_RESTATEMENT_DAYS": "three"}, "AISPEND_RESTATEMENT_DAYS='three' is not a whole number"),
        ({"AISPEND_RESTATEMENT_DAYS": "-5"}, "AISPEND_RESTATEMENT_DAYS='-5' is negative"),
        ({"AISPEND_ALERT_LOOKBACK_DAYS": "x"}, "AISPEND_ALERT_LOOKBACK_DAYS='x'"),
        ({"AISPEND_AWS_ENABLED": "maybe"}, "AISPEND_AWS_ENABLED='maybe' must be true or false"),
        ({"AISPEND_COPILOT_SEAT_PRICE_USD": "-1"}, "AISPEND_COPILOT_SEAT_PRICE_USD='-1' must be a positive amount"),
        ({"AISPEND_UNALLOCATED_WARN_SHARE": "2"}, "must be a fraction between 0 and 1"),
        ({"AISPEND_ALERT_WEBHOOK_URL": "hooks.slack.com/x"}, "AISPEND_ALERT_WEBHOOK_URL must be an http(s) URL"),
    ],
)
def test_each_bad_value_is_named(tmp_path: Path, values: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        validate_settings(env_with(tmp_path, **values))


def test_a_mistyped_seeds_directory_is_an_error_not_an_empty_mapping(tmp_path: Path) -> None:
    problems = settings_problems(env_with(tmp_path, AISPEND_SEEDS_DIR=str(tmp_path / "seedz")))
    assert len(problems) == 1 and "AISPEND_SEEDS_DIR" in problems[0] and "seedz does not exist" in problems[0]


def test_a_duckdb_path_under_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    problems = settings_problems(env_with(tmp_path, AISPEND_DUCKDB_PATH=str(tmp_path / "plain" / "a.duckdb")))
    assert len(problems) == 1 and "is a file, not a directory" in problems[0]


def test_restatement_days_raises_a_clear_error_instead_of_a_traceback() -> None:
    with pytest.raises(SettingsError, match="AISPEND_RESTATEMENT_DAYS='three'"):
        restatement_days({"AISPEND_RESTATEMENT_DAYS": "three"})
    assert restatement_days({}) == 3


def test_a_vendor_with_punctuation_gets_a_slug_the_mapping_accepts() -> None:
    assert vendor_slug("Perplexity.ai") == "perplexity_ai"
    assert vendor_slug("Acme Voice AI") == "acme_voice_ai"
    assert vendor_slug("fal.ai") == "fal"


def test_a_bad_duckdb_memory_limit_is_named_before_a_run(tmp_path) -> None:
    from aispend_pipeline.settings import settings_problems

    env = {"AISPEND_SEEDS_DIR": str(tmp_path), "AISPEND_DUCKDB_PATH": str(tmp_path / "a.duckdb")}
    assert settings_problems(env | {"AISPEND_DUCKDB_MEMORY_LIMIT": "512MB"}) == []
    assert settings_problems(env | {"AISPEND_DUCKDB_MEMORY_LIMIT": "lots"}) == [
        "AISPEND_DUCKDB_MEMORY_LIMIT='lots' must be a size such as 1GB or 512MB"
    ]
