"""The Dockerfile cannot be built here (no container engine can pull a base image on these machines), so
what it does is checked another way: its install step, run on exactly the files .dockerignore lets into
the build context, gives a working `reloader`; its user is the one the manifests run as."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import venv
from pathlib import Path

import yaml

from tests.support import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def build_context(into: Path) -> list[str]:
    """Copy what the Dockerfile COPYs, refusing anything .dockerignore leaves out."""
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [rule for rule in rules if rule and not rule.startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for rule in rules:
            negated = rule.startswith("!")
            pattern = rule.lstrip("!").rstrip("/")
            if (
                fnmatch.fnmatch(path, pattern)
                or path.startswith(pattern + "/")
                or fnmatch.fnmatch(Path(path).name, pattern.removeprefix("**/"))
            ):
                keep = negated
        return keep

    copied = []
    sources = [source for line in re.findall(r"^COPY (.+)$", DOCKERFILE, re.M) for source in line.split()[:-1]]
    for source in sources:
        for path in [ROOT / source] if (ROOT / source).is_file() else sorted((ROOT / source).rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if path.is_file() and included(relative):
                (into / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, into / relative)
                copied.append(relative)
    return copied


def test_the_image_install_step_gives_a_working_reloader(tmp_path):
    # GIVEN the build context the Dockerfile sees
    context = tmp_path / "context"
    context.mkdir()
    copied = build_context(context)
    assert "pyproject.toml" in copied and "agent/cli.py" in copied
    assert not any("__pycache__" in path for path in copied)
    # WHEN its RUN step's install runs (python -m venv, then pip install ".${EXTRAS}" with no extras)
    install = re.search(r'pip install --no-cache-dir "\.\$\{EXTRAS\}"', DOCKERFILE)
    assert install, "Dockerfile: the project's install step"
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    pip = subprocess.run(
        [str(environment / "bin" / "pip"), "install", "--quiet", "."],
        cwd=context,
        capture_output=True,
        text=True,
        check=False,
    )
    assert pip.returncode == 0, pip.stderr
    # THEN the entry point runs and knows the settings the manifests set
    shown = subprocess.run(
        [str(environment / "bin" / "reloader"), "serve", "--help"], capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert "RELOADER_SHUTDOWN_TIMEOUT" in shown.stdout


def test_the_image_runs_as_the_non_root_user_the_manifests_name():
    user = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE, re.M)
    assert user, "Dockerfile: a numeric non-root USER (runAsNonRoot needs a number)"
    deployment = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "base" / "deployment.yaml").read_text())
    context = deployment["spec"]["template"]["spec"]["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (int(user.group(1)), int(user.group(2))) != (0, 0)
    assert re.search(r'^ENTRYPOINT \["reloader"\]$', DOCKERFILE, re.M)
