# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test ui benchmark focus-validate clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aispend demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

benchmark: $(STAMP)
	$(BIN)/python benchmarks/pipeline_benchmark.py

focus-validate: $(STAMP)
	$(BIN)/python benchmarks/focus_validate.py

ui: $(STAMP)
	DAGSTER_HOME=$$($(BIN)/python -m aispend_pipeline.instance) $(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) data .dagster .focus-validator
