"""The README and `--help` document every setting a user can set."""

from __future__ import annotations

import subprocess

from agent.domain.settings import ReloadingSettings
from tests.support import ROOT, reloader


def test_every_setting_is_in_the_readme_and_the_help():
    readme = (ROOT / "README.md").read_text()
    help_text = subprocess.run([reloader(), "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for name in ReloadingSettings.model_fields:
        assert f"`{name}`" in readme and f"RELOADER_{name.upper()}" in readme, name
        assert f"RELOADER_{name.upper()}" in help_text, name
