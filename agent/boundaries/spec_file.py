"""The API spec file: read it, then validate its text (agent.domain.spec, which does no I/O)."""

from __future__ import annotations

from pathlib import Path

from agent.domain.errors import SpecError
from agent.domain.spec import LoadedSpec, parse_spec


def load_spec(path: Path, api_name: str | None = None) -> LoadedSpec:
    """Read and validate a spec file; raise SpecError naming the field on any problem."""
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError(f"cannot read the spec file {path}: {error.strerror}") from error
    return parse_spec(text, path, api_name, path.parent.resolve())
