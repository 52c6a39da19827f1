"""Where a model lives: an S3 prefix (`s3://bucket/prefix`) or, for development, a local folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # without leading or trailing "/"; "" is the whole bucket

    @property
    def key_prefix(self) -> str:
        """The prefix that keys under this location start with (ends in "/" unless it is the bucket)."""
        return f"{self.prefix}/" if self.prefix else ""

    def child(self, name: str) -> S3Location:
        return S3Location(self.bucket, f"{self.key_prefix}{name}")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class LocalLocation:
    path: Path

    def child(self, name: str) -> LocalLocation:
        return LocalLocation(self.path / name)

    def __str__(self) -> str:
        return str(self.path)


Location = S3Location | LocalLocation


def parse_location(value: str, base_dir: Path | None = None) -> Location:
    """`s3://bucket/prefix` -> S3Location; anything else is a local folder (relative to `base_dir`).

    Raises ValueError with what was expected and what was found.
    """
    if value.startswith("s3://"):
        bucket, _, prefix = value[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"expected s3://bucket/prefix, found {value!r} (no bucket name)")
        prefix = prefix.strip("/")
        if "//" in prefix or any(part in (".", "..") for part in prefix.split("/") if prefix):
            raise ValueError(f"expected s3://bucket/prefix with plain segments, found {value!r}")
        return S3Location(bucket, prefix)
    if "://" in value:
        raise ValueError(f"expected s3://bucket/prefix or a local folder, found {value!r}")
    path = Path(os.path.expanduser(value))
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return LocalLocation(path.resolve())
