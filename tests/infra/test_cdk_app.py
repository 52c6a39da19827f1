"""cdk.json's app command (scripts/cdk-app.sh): the repository's .venv, else `python3` from PATH (an
activated virtualenv), and a message saying what to install when neither has aws-cdk-lib."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import aws_cdk  # noqa: F401  (the folder's conftest skips it without the infra extra)

from tests.support import ROOT

APP = json.loads((ROOT / "cdk.json").read_text())["app"]


def run_app(tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    """Run cdk.json's app as the CDK CLI does (a shell command from the repository root), without a .venv."""
    env = {**os.environ, "PATH": path, "CDK_APP_VENV": str(tmp_path / "no-venv"), "CDK_OUTDIR": str(tmp_path / "out")}
    return subprocess.run(APP, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300)


def test_without_dot_venv_the_active_virtualenv_synthesises(tmp_path):
    # GIVEN no .venv, and an activated virtualenv with the infra extra first on PATH (this test's interpreter)
    active = Path(sys.executable).parent
    result = run_app(tmp_path, f"{active}:{os.environ['PATH']}")
    # THEN the app synthesises into CDK_OUTDIR
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "out").glob("*.template.json"))


def test_without_aws_cdk_lib_it_says_what_to_install(tmp_path):
    # GIVEN no .venv, and a virtualenv without the infra extra first on PATH
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    result = run_app(tmp_path, f"{bare / 'bin'}:/usr/bin:/bin")
    assert result.returncode == 1
    assert "cannot import aws-cdk-lib" in result.stderr
    assert "make venv" in result.stderr and "pip install -e '.[infra]'" in result.stderr
