"""Discovery: from the objects listed under one model's prefix to the versions it holds.

A model prefix holds either integer version folders (`<prefix>/<int>/...`, the highest is
"latest") or files directly (a non-versioned model, served as version 1). Anything else is
invalid for that model, and what is loaded keeps serving. Each version carries a fingerprint
of its listing (keys, sizes, ETags) so an in-place update is seen even when LastModified is not.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

NON_VERSIONED = 1  # the version a model with files directly under its prefix is served as


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object; `key` is relative to the model's prefix (or to the version folder)."""

    key: str
    size: int
    etag: str
    last_modified: float = 0.0  # seconds since the epoch; never part of the fingerprint


Page = list[ObjectInfo]  # one page of a listing


@dataclass(frozen=True)
class VersionListing:
    version: int
    objects: tuple[ObjectInfo, ...]  # keys relative to the version folder, sorted; marker excluded
    fingerprint: str
    prefix: str  # relative to the model prefix: "3/" for a version folder, "" when non-versioned
    incomplete: str | None = None  # why it may not be loaded yet (no marker, missing shard, bad key)
    awaiting_marker: bool = False  # incomplete only for want of its marker: a loaded one is withdrawn

    @property
    def newest_change(self) -> float:
        return max((obj.last_modified for obj in self.objects), default=0.0)


@dataclass(frozen=True)
class ModelListing:
    versions: Mapping[int, VersionListing] = field(default_factory=dict)
    error: str | None = None  # the prefix as a whole is invalid: nothing in it is loadable

    @property
    def loadable(self) -> dict[int, VersionListing]:
        if self.error:
            return {}
        return {v: listing for v, listing in self.versions.items() if listing.incomplete is None}


# Given a version's objects (relative keys) and whether its ready marker is there (the user's word
# that the version is complete), say why it is incomplete, or None when it is whole.
CompletenessCheck = Callable[[tuple[ObjectInfo, ...], bool], str | None]


def version_of_key(key: str) -> int:
    """The version a key (relative to its model's prefix) belongs to: its integer folder, else 1."""
    folder, slash, _ = key.partition("/")
    return int(folder) if slash and _as_version(folder) is not None else NON_VERSIONED


def event_can_matter(key: str, ready_marker: str | None, known: set[int]) -> bool:
    """Whether a change to `key` can change what should be served, given the versions `known`
    to the agent (loaded, or failed and awaiting a retry).

    In marker mode a version the agent does not know becomes loadable only through its marker,
    and S3 writes the marker after the files: so a change to one of its other files needs no look,
    whatever order the events arrive in. Without a marker every change matters (it restarts the
    settle window). The periodic scan still looks at everything.
    """
    if ready_marker is None:
        return True
    if key.rsplit("/", 1)[-1] == ready_marker:
        return True
    return version_of_key(key) in known


def early_downloads(landed: Sequence[ObjectInfo], ready_marker: str | None, known: set[int]) -> list[ObjectInfo]:
    """Which objects an event says were written can be downloaded before their version is complete.

    In marker mode, those of a version the agent does not know, other than its marker (the marker's
    event is what makes the version loadable): they would be downloaded once the marker lands, and
    an upload writes its files first, so each can be fetched as its event arrives. The listing made
    when the marker lands decides what is used: a file whose ETag has changed since is fetched again.
    Without a marker, every event already causes a listing; nothing is fetched early.
    """
    if ready_marker is None:
        return []
    return [
        obj
        for obj in landed
        if not event_can_matter(obj.key, ready_marker, known) and unsafe_key_reason(obj.key) is None
    ]


def unsafe_key_reason(key: str) -> str | None:
    """Why a relative key may not be written under a model's folder, or None when it is safe."""
    if key.startswith("/"):
        return "it is absolute"
    if "\\" in key or "\x00" in key:
        return "it contains a backslash or NUL"
    parts = key.split("/")
    if any(part == "" for part in parts):
        return "it has an empty path segment"
    if any(part in (".", "..") for part in parts):
        return "it has a '.' or '..' segment"
    return None


def fingerprint(objects: Iterable[ObjectInfo]) -> str:
    digest = hashlib.sha256()
    for obj in sorted(objects, key=lambda o: o.key):
        digest.update(f"{obj.key}\0{obj.size}\0{obj.etag}\n".encode())
    return digest.hexdigest()


def _is_folder_placeholder(obj: ObjectInfo) -> bool:
    # Consoles and some tools create zero-byte "folder/" objects; they hold no data.
    return obj.key.endswith("/") and obj.size == 0


def discover(
    objects: Iterable[ObjectInfo],
    ready_marker: str | None = None,
    completeness: CompletenessCheck | None = None,
) -> ModelListing:
    """Group a model prefix's objects into versions, saying which are loadable and why not."""
    objects = [obj for obj in objects if not _is_folder_placeholder(obj)]
    if not objects:
        return ModelListing()
    top_files = [obj for obj in objects if "/" not in obj.key]
    by_folder: dict[str, list[ObjectInfo]] = defaultdict(list)
    for obj in objects:
        if "/" in obj.key:
            folder, rest = obj.key.split("/", 1)
            by_folder[folder].append(ObjectInfo(rest, obj.size, obj.etag, obj.last_modified))
    version_folders = {name for name in by_folder if _as_version(name) is not None}

    if not version_folders:
        if not top_files:
            names = ", ".join(sorted(by_folder)[:5])
            return ModelListing(
                error=f"expected integer version folders or model files, found only non-integer folders: {names}"
            )
        listing = _version_listing(NON_VERSIONED, "", objects, ready_marker, completeness)
        return ModelListing({NON_VERSIONED: listing})

    others = sorted({obj.key for obj in top_files} | (set(by_folder) - version_folders))
    if others:
        return ModelListing(
            error="expected only integer version folders, found other entries beside them: " + ", ".join(others[:5])
        )
    versions = {}
    for name in version_folders:
        version = _as_version(name)
        assert version is not None
        if version in versions:
            return ModelListing(error=f"version {version} is given by two folders (e.g. '1' and '01')")
        versions[version] = _version_listing(version, f"{name}/", by_folder[name], ready_marker, completeness)
    return ModelListing(versions)


def _as_version(name: str) -> int | None:
    return int(name) if name.isdigit() and name.isascii() else None


def _version_listing(
    version: int,
    prefix: str,
    objects: list[ObjectInfo],
    ready_marker: str | None,
    completeness: CompletenessCheck | None,
) -> VersionListing:
    unsafe = [(obj.key, reason) for obj in objects if (reason := unsafe_key_reason(obj.key))]
    files = tuple(sorted((obj for obj in objects if obj.key != ready_marker), key=lambda o: o.key))
    incomplete = None
    awaiting_marker = False
    if unsafe:
        key, reason = unsafe[0]
        incomplete = f"key {prefix}{key!r} refused: {reason}; it would be written outside the model folder"
    elif ready_marker and len(files) == len(objects):
        incomplete = f"waiting for the ready marker {prefix}{ready_marker}"
        awaiting_marker = True
    elif not files:
        incomplete = "the version holds only its ready marker"
    elif completeness is not None:
        incomplete = completeness(files, ready_marker is not None)  # a marker set here is present
    return VersionListing(version, files, fingerprint(files), prefix, incomplete, awaiting_marker)
