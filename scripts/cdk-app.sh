#!/bin/sh
# cdk.json's "app": run infra/cdk/app.py with the repository's .venv (`make venv`) when it exists, else with
# `python3` from PATH (an activated virtualenv with the infra extra); say what to do when aws-cdk-lib is missing.
# CDK_APP_VENV names another virtualenv folder than .venv (the tests use it).
cd "$(dirname "$0")/.." || exit 1
venv="${CDK_APP_VENV:-.venv}"
if [ -x "$venv/bin/python" ]; then
    python="$venv/bin/python"
else
    python=python3
fi
if ! "$python" -c "import aws_cdk, cdk_nag" 2>/dev/null; then
    echo "cdk app: $python ($(command -v "$python" || echo "not found")) cannot import aws-cdk-lib and cdk-nag." >&2
    echo "  Run 'make venv' (it installs the infra extra into .venv), or in your virtualenv: pip install -e '.[infra]'" >&2
    exit 1
fi
exec "$python" -m infra.cdk.app
