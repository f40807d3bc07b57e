"""The built wheel carries the package's data files and not the tests, and works without the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from aispend_pipeline.sources.registry import SOURCES

REPO = Path(__file__).resolve().parents[2]
COPIED = ("pyproject.toml", "README.md", "aispend_pipeline", "aispend_pipeline_tests")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel --no-deps .` of a copy of the checkout (so the build leaves nothing in it), with the tests
    beside the package as in the repository."""
    source = tmp_path_factory.mktemp("checkout")
    for name in COPIED:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copyfile(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    started = time.monotonic()
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out)]
    done = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    print(f"pip wheel: {time.monotonic() - started:.1f} s")
    (built,) = out.glob("aispend_pipeline-*.whl")
    return built


def test_the_wheel_has_the_data_files_and_no_tests(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [n for n in names if n.startswith("aispend_pipeline_tests")]
    assert "aispend_pipeline/instance/dagster.yaml" in names
    for source in SOURCES:
        assert f"aispend_pipeline/sources/{source.name}/README.md" in names, source.name
    assert "aispend_pipeline/simulators/demo_seeds.py" in names


def test_the_installed_wheel_writes_the_demo_seeds_without_the_checkout(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(target)]
    done = subprocess.run([*install, str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    script = (
        "import datetime as d, pathlib as p, aispend_pipeline as a\n"
        "from aispend_pipeline.simulators import start_simulators\n"
        "from aispend_pipeline.simulators.demo_seeds import write_demo_seeds\n"
        "from aispend_pipeline.instance import TEMPLATE\n"
        "assert TEMPLATE.is_file()\n"
        "with start_simulators() as sims:\n"
        "    rows = sims.demo_mapping_rows()\n"
        "    seeds = write_demo_seeds(p.Path('demo-seeds'), d.date(2027, 1, 5), d.date(2027, 2, 3), rows)\n"
        "print(a.__file__, sorted(f.name for f in seeds.iterdir()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}  # ahead of the editable install of the checkout
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    module, files = done.stdout.split(" ", 1)
    assert Path(module).is_relative_to(target)
    assert files.strip() == "['fx_rates.csv', 'manual_invoices.csv', 'org_mapping.csv']"
