"""`/models` for a person: derived from a model's index value and what serves, never stored apart.

A version is `loading` while its worker loads it, `ready` while it serves (with the error of a failed
update in place beside it), `waiting` while incomplete or settling (and why), `failed` with its error
and attempts while its retry waits. With caching (`on_disk` given) every version S3 holds is listed,
`available` when it loads on a request, and each row says where the version is: `memory`, `loading`,
`disk` (its folder) or `s3` only; "latest" is what a request for it gets now.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.domain.caching import latest_candidates, resolve
from agent.domain.index import ModelState, Served, VersionEntry


def model_status(
    state: ModelState, served: Mapping[int, Served], settle: float, on_disk: set[int] | None = None
) -> dict[str, Any] | None:
    """The `/models` entry of one model, or None when there is nothing to say about it.
    `on_disk`: with caching, the versions whose folder is on disk."""
    versions = {}
    for version in sorted(set(state.versions) | set(served)):
        row = _version_status(state, version, served.get(version), settle)
        if on_disk is not None:
            row = _where(row, state, version, version in served, version in on_disk)
        if row is not None:
            versions[str(version)] = row
    if not versions and not served and state.error is None:
        return None
    if on_disk is None:
        latest = max(served) if served else None
    else:
        latest = resolve(latest_candidates(state), state.loading, served)
    return {
        "latest": latest,
        "loaded": sorted(served),
        "error": state.error,
        "last_event": state.last_event,
        "last_reload": state.last_reload,
        "versions": versions,
    }


def _where(
    row: dict[str, Any] | None, state: ModelState, version: int, in_memory: bool, on_disk: bool
) -> dict[str, Any] | None:
    """With caching: every version in S3 has a row, saying where it is."""
    entry = state.versions.get(version)
    if row is None:
        if entry is None:
            return None
        row = _row("available", entry.fingerprint)
    if version in state.loading:
        where = "loading"
    elif in_memory:
        where = "memory"
    elif on_disk:
        where = "disk"
    else:
        where = "s3"
    return {**row, "where": where}


def _version_status(state: ModelState, version: int, served: Served | None, settle: float) -> dict[str, Any] | None:
    entry = state.versions.get(version)
    if entry is not None and version in state.loading:
        return _row("loading", entry.fingerprint, served=served)
    if served is not None:
        return _served_status(entry, served)
    if entry is None:
        return None
    return _unserved_status(state, version, entry, settle)


def _unserved_status(state: ModelState, version: int, entry: VersionEntry, settle: float) -> dict[str, Any] | None:
    """A version in S3 that does not serve: waiting (incomplete, settling), failed, or nothing to say yet."""
    if entry.listing.incomplete is not None:
        return _row("waiting", entry.fingerprint, entry.listing.incomplete)
    if version in state.settling:
        return _row("waiting", entry.fingerprint, f"settling: loads once its listing stays unchanged for {settle:g} s")
    if entry.failure is not None:
        return _row("failed", entry.failure.fingerprint, entry.failure.error, attempts=entry.failure.attempts)
    return None


def _served_status(entry: VersionEntry | None, served: Served) -> dict[str, Any]:
    """A serving version is ready; a failed update in place of it is said beside it."""
    failure = entry.failure if entry is not None else None
    if failure is not None and failure.fingerprint != served.fingerprint:
        error = f"the update in place to {failure.fingerprint[:12]} failed, the previous content serves: "
        return _row("ready", served.fingerprint, error + failure.error, served, failure.attempts)
    return _row("ready", served.fingerprint, served=served)


def _row(
    state: str, fingerprint: str, error: str | None = None, served: Served | None = None, attempts: int = 0
) -> dict[str, Any]:
    return {
        "state": state,
        "fingerprint": fingerprint[:12],
        "error": error,
        "loaded_at": served.loaded_at if served is not None else None,
        "attempts": attempts,
        **(served.details if served is not None else {}),
    }
