"""`handler.type: tensorflow` without the tensorflow extra: a clear refusal, not an ImportError.

`make test` runs this in the core-only virtualenv, where the extra really is missing; where it is
installed, the run hides it (a None entry in sys.modules makes an import fail).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.support import ROOT, reloader

HIDE_THE_EXTRA = "import sys; sys.modules['tensorflow_serving'] = None; from agent.cli import main; sys.exit(main())"


@pytest.mark.parametrize("command", ["serve", "agent"])
def test_type_tensorflow_without_the_extra_exits_2_saying_what_to_install(command, tmp_path):
    # GIVEN a TensorFlow API spec, and no tensorflow extra
    spec = tmp_path / "cortex.yaml"
    handler = {"type": "tensorflow", "path": "handler.py", "models": {"path": "s3://bucket/models/m"}}
    spec.write_text(yaml.safe_dump([{"name": "api", "kind": "RealtimeAPI", "handler": handler}]))

    # WHEN it is served, or its agent run
    result = subprocess.run(
        [sys.executable, "-c", HIDE_THE_EXTRA, command, str(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # THEN it exits with status 2 and says how to install the extra
    assert result.returncode == 2, result.stderr
    assert "pip install 'model-reloader[tensorflow]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_agent_alone_is_for_tensorflow_apis(tmp_path):
    # GIVEN a Python handler spec
    spec = tmp_path / "cortex.yaml"
    handler = {"type": "python", "path": "handler.py"}
    spec.write_text(yaml.safe_dump([{"name": "api", "kind": "RealtimeAPI", "handler": handler}]))
    # WHEN `reloader agent` is run on it THEN it refuses with status 2, pointing at `reloader serve`
    result = subprocess.run(
        [reloader(), "agent", str(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "reloader serve" in result.stderr
