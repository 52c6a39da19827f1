"""The local model store: one folder per loaded version, written atomically.

A version is downloaded into a temporary sibling and renamed into place only when complete,
so `load_model(path)` only ever sees whole folders. Each (version, fingerprint) gets its own
folder, so a folder is never modified after it is loaded: an in-place update in S3 becomes a
new folder, and the old one is removed once nothing serves it. The folder's name is a layout
choice (`folder_name`): `<version>-<fingerprint>` by default; TF Serving needs integer names.

With `record=True` (TF Serving's folder, which outlives the agent) each folder also holds a small
record of the version and fingerprint it was downloaded for, so that a restarted agent can take
over the folders TF Serving still serves instead of downloading them again (`recorded`). A loader
that still needs a folder (TF Serving has not reported it unloaded) says so through `in_use`:
removing it then waits for `sweep`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.domain.errors import TemporaryError

log = logging.getLogger(__name__)

TEMP_PREFIX = ".partial-"
RECORD = ".reloader-version.json"  # inside a version folder: what it was downloaded for

# (model, version, fingerprint) -> the name of that download's folder under the model's folder
FolderName = Callable[[str, int, str], str]


class Cancellable(Protocol):
    def cancel(self) -> None: ...


# (delay in seconds, call): the agent's scheduler, which runs the call then (Scheduler.call_later)
Later = Callable[[float, Callable[[], None]], Cancellable]


FINGERPRINT_PREFIX = 12  # characters of the fingerprint in a folder's name


def version_and_fingerprint(model: str, version: int, fingerprint: str) -> str:
    return f"{version}-{fingerprint[:FINGERPRINT_PREFIX]}"


class InternalVersions:
    """TF Serving's layout: `<model>/<internal version>`, a fresh number per download: increasing, and
    above any a previous run used (they start at the clock in milliseconds), so a number TF Serving
    saw before is never given again."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, int(self._clock() * 1000))
            return self._last

    def folder_name(self, model: str, version: int, fingerprint: str) -> str:
        return str(self.next())


@dataclass(frozen=True)
class StoredVersion:
    """A version folder a previous run left, with what its record says it holds."""

    model: str
    version: int
    fingerprint: str
    folder: Path


class ModelStore:
    def __init__(
        self,
        root: Path,
        folder_name: FolderName = version_and_fingerprint,
        retire_after: float = 0.0,
        record: bool = False,
        later: Later | None = None,
        in_use: Callable[[Path], bool] | None = None,
    ) -> None:
        self.root = root
        self._folder_name = folder_name
        self._retire_after = retire_after
        self._record = record
        self._later = later
        self._lock = threading.Lock()
        self._installed: dict[tuple[str, int, str], Path] = {}  # (model, version, fingerprint) -> its folder
        self._deferred: set[Path] = set()  # removals that wait until the folder is no longer in use
        # Whether a loader still reads a folder (TF Serving has not reported its version unloaded):
        # its removal then waits for `sweep`.
        self._in_use: Callable[[Path], bool] = in_use or (lambda _: False)

    def folder(self, model: str, version: int, fingerprint: str) -> Path:
        """The folder of that content: the one installed (or adopted) before, else a new name."""
        with self._lock:
            known = self._installed.get((model, version, fingerprint))
        if known is not None and known.is_dir():
            return known
        folder = self.root / model / self._folder_name(model, version, fingerprint)
        while self._record and folder.exists():  # a number a previous run used (its clock was ahead): the next
            folder = self.root / model / self._folder_name(model, version, fingerprint)
        return folder

    def scratch(self, model: str) -> Path:
        """A new folder name beside the model's version folders (not created) for a download not yet part
        of a version: on the same file system, so its files can be renamed into a version's folder. Named
        as a partial download, so `clean` removes what a crash left there."""
        return self.root / model / f"{TEMP_PREFIX}early-{uuid.uuid4().hex[:8]}"

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
            if self._record:
                record = {"model": model, "version": version, "fingerprint": fingerprint}
                (temporary / RECORD).write_text(json.dumps(record))
            os.rename(temporary, final)
        except OSError as error:
            raise TemporaryError(f"cannot write {final}: {error}") from error
        finally:
            if temporary.exists():
                shutil.rmtree(temporary, ignore_errors=True)
        with self._lock:
            self._installed[(model, version, fingerprint)] = final
            superseded = [
                path for (m, v, f), path in self._installed.items() if (m, v) == (model, version) and f != fingerprint
            ]
        if self._record:  # e.g. a download kept for a retry, then changed in S3: goes once no longer in use
            for path in superseded:
                self.remove(path)
        return final

    def remove(self, folder: Path) -> None:
        """Remove a version's folder (and its model's folder once empty); later if it is still `in_use`."""
        if not folder.is_relative_to(self.root):
            return
        with self._lock:
            self._installed = {key: path for key, path in self._installed.items() if path != folder}
            if self._in_use(folder):
                self._deferred.add(folder)
                return
            self._deferred.discard(folder)
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # other versions are still there
            folder.parent.rmdir()

    def sweep(self) -> None:
        """Remove the folders whose removal waited until they were no longer in use."""
        with self._lock:
            deferred = list(self._deferred)
        for folder in deferred:
            self.remove(folder)

    def retire(self, folder: Path, on_removed: Callable[[], None] | None = None) -> Cancellable | None:
        """Remove the folder of a version that just stopped serving, once requests that started on it
        had time to finish (`retire_after` seconds): a model may still read its files lazily. Returns
        the pending removal (None once done), which a cache cancels when it needs the folder again."""

        def remove() -> None:
            self.remove(folder)
            if on_removed is not None:
                on_removed()

        if self._retire_after <= 0 or self._later is None:
            remove()
            return None
        return self._later(self._retire_after, remove)

    def recorded(self) -> list[StoredVersion]:
        """The complete version folders a previous run left with a record, which `folder` now reuses."""
        found = []
        for model in sorted(self.root.iterdir()) if self.root.is_dir() else ():
            for entry in sorted(model.iterdir()) if model.is_dir() else ():
                try:
                    record = json.loads((entry / RECORD).read_text())
                    stored = StoredVersion(model.name, int(record["version"]), str(record["fingerprint"]), entry)
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # not a folder of ours, or a partial download
                if record.get("model") == model.name and not entry.name.startswith(TEMP_PREFIX):
                    found.append(stored)
                    with self._lock:
                        self._installed[(stored.model, stored.version, stored.fingerprint)] = entry
        return found

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
                    with self._lock:
                        self._installed = {key: path for key, path in self._installed.items() if path != entry}
                    shutil.rmtree(entry, ignore_errors=True)
