# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench venv localstack-install clean

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

localstack-install:
	scripts/localstack.sh install

demo: venv localstack-install
	scripts/demo.sh

lint: venv
	$(BIN)/ruff check agent tests examples bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint localstack-install
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .localstack .mypy_cache .ruff_cache .pytest_cache

bench: venv localstack-install
	$(BIN)/python -m bench.reload
