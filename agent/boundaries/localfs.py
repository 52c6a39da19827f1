"""Local model folders, for development: the same list/download contract as `s3.py`, over a directory.

A local file's "ETag" is its size and modification time, so an in-place edit changes the fingerprint.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from agent.boundaries.s3 import safe_path
from agent.domain.errors import ObjectChangedError, PermanentError
from agent.domain.locations import LocalLocation
from agent.domain.versions import ObjectInfo


class LocalFolders:
    def list(self, location: LocalLocation) -> list[ObjectInfo]:
        root = location.path
        if not root.exists():
            return []
        if not root.is_dir():
            raise PermanentError(f"expected a folder at {root}, found a file")
        objects = []
        for folder, _, files in os.walk(root):
            for name in files:
                path = Path(folder, name)
                stat = path.stat()
                key = path.relative_to(root).as_posix()
                objects.append(ObjectInfo(key, stat.st_size, f"{stat.st_mtime_ns:x}-{stat.st_size:x}", stat.st_mtime))
        return objects

    def download(self, location: LocalLocation, objects: Iterable[ObjectInfo], destination: Path) -> None:
        for obj in objects:
            target = safe_path(destination, obj.key)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(location.path / obj.key, target)
            except FileNotFoundError as error:
                raise ObjectChangedError(f"{location.path / obj.key} was removed while copying") from error
