"""Where models are read from: S3 or a local folder, chosen by the location's kind."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from agent.boundaries.localfs import LocalFolders
from agent.boundaries.s3 import S3
from agent.domain.errors import PermanentError
from agent.domain.locations import Location, S3Location
from agent.domain.versions import ObjectInfo, Page


class ModelObjects:
    """List and download a model location's objects, whichever kind of location it is."""

    def __init__(self, s3: S3 | None, local: LocalFolders | None = None) -> None:
        self._s3 = s3
        self._local = local or LocalFolders()

    def list(self, location: Location) -> list[ObjectInfo]:
        if isinstance(location, S3Location):
            return self._require_s3().list(location)
        return self._local.list(location)

    def pages(self, location: Location) -> Iterator[Page]:
        """The objects page by page: S3's pages, in key order; a local folder in one page."""
        if isinstance(location, S3Location):
            yield from self._require_s3().pages(location)
        else:
            yield self._local.list(location)

    def download(self, location: Location, objects: Iterable[ObjectInfo], destination: Path) -> None:
        if isinstance(location, S3Location):
            self._require_s3().download(location, objects, destination)
        else:
            self._local.download(location, objects, destination)

    def _require_s3(self) -> S3:
        if self._s3 is None:
            raise PermanentError("an s3:// model path needs an S3 client, and none was configured")
        return self._s3
