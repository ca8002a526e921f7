# `make run` and `make test` create the pinned local venv when it is missing, then do their job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test venv bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,mujoco,tensorboard]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/reptile-gui

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_meta_step.py
	$(BIN)/python benchmarks/bench_sine_quality.py

clean:
	rm -rf $(VENV) runs .pytest_cache
