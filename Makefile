# The README's commands. Each target creates the virtualenv and installs what it
# needs on first use; a stamp file per extra skips pip until pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-slow bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[$*]"
	touch $@

demo: $(VENV)/.installed-jaxmarl  ## random-policy rollouts of a few envs of every family
	$(BIN)/credo demo

test: $(VENV)/.installed-test  ## the default (fast) test suite
	$(BIN)/python -m pytest -q

test-slow: $(VENV)/.installed-test  ## long checks marked @pytest.mark.slow
	$(BIN)/python -m pytest -q -m slow

bench: $(VENV)/.installed-all  ## throughput benchmarks; writes benchmarks/results/
	$(BIN)/python benchmarks/env_throughput.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
