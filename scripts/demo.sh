#!/usr/bin/env bash
# `make demo`: run scripts/demo.py with the project's virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/demo.py "$@"
