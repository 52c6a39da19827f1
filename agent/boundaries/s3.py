"""S3: list a model's prefix, download a version's objects (through s3transfer), upload a folder.

The only module that talks to S3. Keys come back relative to the location listed, and every
download lands inside its destination folder or is refused.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from s3transfer.exceptions import RetriesExceededError, S3DownloadFailedError
from s3transfer.manager import TransferManager
from s3transfer.subscribers import BaseSubscriber

from agent.boundaries.aws import count_calls, translated
from agent.domain.errors import ObjectChangedError, ReloaderError, TemporaryError, UnsafeKeyError
from agent.domain.locations import S3Location
from agent.domain.versions import ObjectInfo, Page, unsafe_key_reason

CHUNK = 1024 * 1024  # bytes written at a time by a plain GET
_TOKEN_OPEN = b"<NextContinuationToken>"


class S3:
    def __init__(
        self,
        client: Any,
        concurrency: int = 10,
        on_request: Callable[[str, float], None] | None = None,
        multipart_threshold: int = TransferConfig().multipart_threshold,
    ) -> None:
        self._client = client
        self._concurrency = concurrency
        # One transfer manager for every download: its thread pools are made once, not per version.
        config = TransferConfig(max_concurrency=concurrency, use_threads=True, multipart_threshold=multipart_threshold)
        self._downloads = TransferManager(client, config)
        self._multipart_threshold = multipart_threshold  # objects below it: one plain GET each
        self._gets = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="s3-get")  # made once, lazily
        # A LIST's next page is asked for while this one is parsed (see `pages`): two threads, made on first use.
        self._lists = ThreadPoolExecutor(max_workers=2, thread_name_prefix="s3-list")
        self._listing = threading.local()  # on the thread of a LIST call: where to send the next page's request
        client.meta.events.register("before-parse.s3.ListObjectsV2", self._ask_next_page)
        # Every GET of a download carries IfMatch with the ETag we listed: an object replaced since the
        # listing fails with 412 instead of mixing old and new files into one version.
        self._expected_etags: dict[tuple[str, str], str] = {}
        client.meta.events.register("before-parameter-build.s3.GetObject", self._pin_etag)
        if on_request is not None:
            count_calls(client, "s3", on_request)

    def close(self) -> None:
        self._downloads.shutdown()
        self._gets.shutdown()
        self._lists.shutdown()

    def list(self, location: S3Location) -> list[ObjectInfo]:
        """Every object under the location, keys relative to it."""
        return [obj for page in self.pages(location) for obj in page]

    def pages(self, location: S3Location) -> Iterator[Page]:
        """The objects under the location page by page (keys relative to it, in S3's key order), so a
        caller can act on one page while the next is listed.

        Pipelined: a truncated page's continuation token is in its raw answer before botocore parses
        it (about 30 ms of CPU for 1,000 keys), so the request for page k+1 is sent then, from another
        thread, and S3 prepares it while page k is parsed here. The parsed token is checked against the
        one that request used; should they differ, the next page is asked for again."""
        prefix = location.key_prefix
        with translated(f"listing {location}"):
            response, following = self._list_page(location.bucket, prefix, None)
            while True:
                yield _objects(response, prefix)
                token = response.get("NextContinuationToken")
                if not response.get("IsTruncated") or not token:
                    return
                if following is None or following[0] != token:  # not asked ahead, or with another token
                    following = (token, self._lists.submit(self._list_page, location.bucket, prefix, token))
                response, following = following[1].result()

    def _list_page(
        self, bucket: str, prefix: str, token: str | None
    ) -> tuple[dict[str, Any], tuple[str, Future[Any]] | None]:
        """One page, and the request for the next one if `_ask_next_page` sent it while this one was parsed."""
        asked: list[tuple[str, Future[Any]]] = []

        def next_page(following: str) -> None:
            asked.append((following, self._lists.submit(self._list_page, bucket, prefix, following)))

        self._listing.next_page = next_page
        try:
            arguments = {"Bucket": bucket, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
            response = self._client.list_objects_v2(**arguments)
        finally:
            self._listing.next_page = None
        return response, asked[0] if asked else None

    def _ask_next_page(self, response_dict: dict[str, Any] | None = None, **_: Any) -> None:
        """botocore's before-parse hook of ListObjectsV2: a truncated page's continuation token, from the raw XML."""
        next_page = getattr(self._listing, "next_page", None)
        body = (response_dict or {}).get("body")
        if next_page is None or not isinstance(body, bytes):
            return
        start = body.find(_TOKEN_OPEN)
        end = body.find(b"</NextContinuationToken>", start)
        if start >= 0 and end > start:
            self._listing.next_page = None  # once per page
            next_page(html.unescape(body[start + len(_TOKEN_OPEN) : end].decode()))

    def download(self, location: S3Location, objects: Iterable[ObjectInfo], destination: Path) -> None:
        """Download objects (keys relative to `location`) into `destination`, in parallel.

        Each GET is pinned to the listed ETag: if an object changed or vanished since the listing,
        ObjectChangedError says so (a fresh listing will be read). What lands is exactly what was listed.
        Objects below s3transfer's multipart threshold are one plain GET each (the first on this thread):
        for them s3transfer's queues and thread hand-offs cost more than the GET itself.
        """
        targets = [(obj, location.key_prefix + obj.key, safe_path(destination, obj.key)) for obj in objects]
        for _, _, target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
        small = [(obj, key, target) for obj, key, target in targets if obj.size < self._multipart_threshold]
        large = [(obj, key, target) for obj, key, target in targets if obj.size >= self._multipart_threshold]
        pins = {(location.bucket, key): obj.etag for obj, key, _ in large if obj.etag}
        self._expected_etags.update(pins)
        waits: list[Callable[[], Any]] = []
        try:
            with translated(f"downloading {location}"):
                for obj, key, target in large:
                    hints = [_Hints(obj.size, obj.etag)]
                    waits.append(self._downloads.download(location.bucket, key, str(target), subscribers=hints).result)
                for obj, key, target in small[1:]:
                    waits.append(self._gets.submit(self._get, location.bucket, key, obj.etag, target).result)
                if small:
                    obj, key, target = small[0]
                    waits.insert(0, partial(self._get, location.bucket, key, obj.etag, target))
            # Every transfer is waited for, so none still writes into the folder once this returns or raises.
            errors = [error for error in (_outcome(wait, location) for wait in waits) if error is not None]
            if errors:
                raise errors[0]
        finally:
            for pin in pins:
                self._expected_etags.pop(pin, None)

    def _get(self, bucket: str, key: str, etag: str, target: Path) -> None:
        arguments = {"Bucket": bucket, "Key": key, **({"IfMatch": f'"{etag}"'} if etag else {})}
        body = self._client.get_object(**arguments)["Body"]
        with open(target, "wb") as file:
            for chunk in body.iter_chunks(CHUNK):
                file.write(chunk)

    def _pin_etag(self, params: dict[str, Any], **_: Any) -> None:
        etag = self._expected_etags.get((params.get("Bucket", ""), params.get("Key", "")))
        if etag and "IfMatch" not in params:
            params["IfMatch"] = f'"{etag}"'

    def upload(
        self,
        files: Iterable[tuple[Path, str]],
        bucket: str,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        """Upload (local file, key) pairs in parallel; returns when all are stored."""
        config = TransferConfig(max_concurrency=self._concurrency, use_threads=True)
        subscribers = [_Progress(on_progress)] if on_progress else None
        with translated(f"uploading to s3://{bucket}"), TransferManager(self._client, config) as manager:
            futures = [manager.upload(str(path), bucket, key, subscribers=subscribers) for path, key in files]
            for future in futures:
                future.result()

    def put(self, bucket: str, key: str, body: bytes = b"") -> None:
        with translated(f"writing s3://{bucket}/{key}"):
            self._client.put_object(Bucket=bucket, Key=key, Body=body)

    def delete(self, bucket: str, key: str) -> None:
        with translated(f"deleting s3://{bucket}/{key}"):
            self._client.delete_object(Bucket=bucket, Key=key)


def _objects(page: dict[str, Any], prefix: str) -> Page:
    return [
        ObjectInfo(
            key=item["Key"][len(prefix) :],
            size=int(item["Size"]),
            etag=str(item.get("ETag", "")).strip('"'),
            last_modified=item["LastModified"].timestamp(),
        )
        for item in page.get("Contents", ())
    ]


def safe_path(destination: Path, key: str) -> Path:
    """`destination / key`, or UnsafeKeyError when the key would land outside `destination`."""
    reason = unsafe_key_reason(key)
    target = (destination / key).resolve()
    if reason is None and not target.is_relative_to(destination.resolve()):
        reason = "it resolves outside the model folder"
    if reason is not None:
        raise UnsafeKeyError(f"key {key!r} refused: {reason}")
    return target


def _outcome(wait: Callable[[], Any], location: S3Location) -> ReloaderError | None:
    """The error of one transfer, translated (None when it succeeded)."""
    try:
        with translated(f"downloading {location}"):
            _result_or_changed(wait, location)
    except ReloaderError as error:
        return error
    return None


def _result_or_changed(wait: Callable[[], Any], location: S3Location) -> None:
    try:
        wait()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "412", "PreconditionFailed"):
            raise ObjectChangedError(f"an object of {location} was removed or replaced while downloading") from error
        raise
    except S3DownloadFailedError as error:
        if "ETag" in str(error):
            raise ObjectChangedError(f"an object of {location} was removed or replaced while downloading") from error
        raise TemporaryError(f"downloading {location} failed: {error}") from error
    except RetriesExceededError as error:  # s3transfer gave up on a ranged GET's stream (a plain Exception)
        raise TemporaryError(f"downloading {location} failed: {error}") from error
    except OSError as error:
        raise TemporaryError(f"writing a download of {location} failed: {error}") from error


class _Hints(BaseSubscriber):  # type: ignore[misc]
    """Tell s3transfer the size and ETag from our listing: no HeadObject before the GET."""

    def __init__(self, size: int, etag: str) -> None:
        self._size = size
        self._etag = etag

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self._size)
        if self._etag:
            future.meta.provide_object_etag(f'"{self._etag}"')


class _Progress(BaseSubscriber):  # type: ignore[misc]
    """An s3transfer subscriber that reports bytes transferred."""

    def __init__(self, on_progress: Callable[[int], None]) -> None:
        self._on_progress = on_progress

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        self._on_progress(bytes_transferred)
