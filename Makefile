# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-cache bench-serving bench-processes bench-instructions venv localstack-install prometheus-install clean

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,infra]'
	touch $@

# With the tensorflow extra (no infra): the TensorFlow tests run here and skip in $(VENV); infra tests the reverse.
VENV_TF := .venv-tf
$(VENV_TF)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV_TF)
	$(VENV_TF)/bin/pip install --quiet --upgrade pip
	$(VENV_TF)/bin/pip install --quiet -e '.[dev,tensorflow]'
	touch $@

localstack-install:
	scripts/localstack.sh install

# The CDK CLI and cdklocal, pinned in package-lock.json, for the deployment tests.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's prometheus package (promtool and the server) for the monitoring tests; they skip, saying why,
# where it cannot be installed (not root, not Debian). Its packaged daemon is never used by the tests.
prometheus-install:
	@if command -v promtool >/dev/null && command -v prometheus >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
		|| echo "prometheus-install: apt-get failed; the monitoring tests will skip"; \
	else echo "prometheus-install: not root on Debian; the monitoring tests that need promtool/prometheus will skip"; fi

demo: venv localstack-install
	scripts/demo.sh

lint: venv
	$(BIN)/ruff check agent functions infra tests examples bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint localstack-install prometheus-install node_modules/.installed $(VENV_TF)/.installed
	$(BIN)/pytest
	$(VENV_TF)/bin/pytest --ignore=tests/deploy  # the deployment kit's tests need no TensorFlow: once, above

clean:
	rm -rf $(VENV) $(VENV_TF) .localstack .mypy_cache .ruff_cache .pytest_cache node_modules cdk.out

bench: venv localstack-install
	$(BIN)/python -m bench.reload

bench-cache: venv localstack-install
	$(BIN)/python -m bench.cache
# `reloader serve` against a bare Starlette app under wrk (a Debian package: installed here when missing).
bench-serving: venv
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.serving
# The same with 1 and 2 serving processes (issue 11): processes_per_replica against uvicorn --workers.
bench-processes: venv
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.serving --processes 1,2
# Instructions per request of both servers under valgrind's callgrind (deterministic on a shared host).
bench-instructions: venv
	command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)
	$(BIN)/python -m bench.serving --instructions 60
