"""The local model store: one folder per loaded version, written atomically.

A version is downloaded into a temporary sibling and renamed into place only when complete,
so `load_model(path)` only ever sees whole folders. Each (version, fingerprint) gets its own
folder, so a folder is never modified after it is loaded: an in-place update in S3 becomes a
new folder, and the old one is removed once nothing serves it. The folder's name is a layout
choice (`folder_name`): `<version>-<fingerprint>` by default; TF Serving needs integer names.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from agent.domain.errors import TemporaryError

log = logging.getLogger(__name__)

TEMP_PREFIX = ".partial-"

# (model, version, fingerprint) -> the name of that download's folder under the model's folder
FolderName = Callable[[str, int, str], str]


def version_and_fingerprint(model: str, version: int, fingerprint: str) -> str:
    return f"{version}-{fingerprint[:12]}"


class ModelStore:
    def __init__(
        self, root: Path, folder_name: FolderName = version_and_fingerprint, retire_after: float = 0.0
    ) -> None:
        self.root = root
        self._folder_name = folder_name
        self._retire_after = retire_after

    def folder(self, model: str, version: int, fingerprint: str) -> Path:
        return self.root / model / self._folder_name(model, version, fingerprint)

    def install(self, model: str, version: int, fingerprint: str, fill: Callable[[Path], None]) -> Path:
        """Fill a temporary folder with `fill(folder)`, then rename it into place; return the final folder."""
        final = self.folder(model, version, fingerprint)
        if final.is_dir():
            return final  # the same content was installed before (a retry of a failed load)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.parent / f"{TEMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
        temporary.mkdir()
        try:
            fill(temporary)
            os.rename(temporary, final)
        except OSError as error:
            raise TemporaryError(f"cannot write {final}: {error}") from error
        finally:
            if temporary.exists():
                shutil.rmtree(temporary, ignore_errors=True)
        return final

    def remove(self, folder: Path) -> None:
        """Remove a version's folder (and its model's folder once empty)."""
        if folder.is_relative_to(self.root):
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):  # other versions are still there
                folder.parent.rmdir()

    def retire(self, folder: Path) -> None:
        """Remove the folder of a version that just stopped serving, once requests that started on it
        had time to finish (`retire_after` seconds): a model may still read its files lazily."""
        if self._retire_after <= 0:
            self.remove(folder)
            return
        timer = threading.Timer(self._retire_after, self.remove, [folder])
        timer.daemon = True
        timer.start()

    def clean(self, keep: Callable[[Path], bool] = lambda _: False) -> None:
        """Remove partial downloads left by a crash, and version folders `keep` does not claim."""
        if not self.root.is_dir():
            return
        for model in self.root.iterdir():
            if not model.is_dir():
                continue
            for entry in model.iterdir():
                if entry.name.startswith(TEMP_PREFIX) or not keep(entry):
                    log.info("removing stale store entry %s", entry)
                    shutil.rmtree(entry, ignore_errors=True)
