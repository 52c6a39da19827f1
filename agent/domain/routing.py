"""Which model an S3 key belongs to, for `path`, `paths` and `dir` model sets.

An event only says "look at model M now": routing turns its bucket and key into M, or into
None for keys of other buckets or prefixes. Lookups cost the depth of the key, not the number
of models, so a bucket with 10,000 models routes an event as fast as one with ten.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from agent.domain.locations import LocalLocation, Location, S3Location
from agent.domain.versions import unsafe_key_reason


@dataclass(frozen=True)
class ModelSource:
    name: str
    location: Location
    signature_key: str | None = None


@dataclass(frozen=True)
class ModelSet:
    """The models an API serves: fixed ones (`path`, `paths`) or every folder of a `dir`."""

    fixed: tuple[ModelSource, ...] = ()
    directory: Location | None = None
    single: bool = False  # `path` mode: requests may omit the model name
    signature_key: str | None = None  # default for `dir` models (TensorFlow)
    _by_prefix: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for source in self.fixed:
            if isinstance(source.location, S3Location):
                self._by_prefix[(source.location.bucket, source.location.prefix)] = source.name

    def source(self, name: str) -> ModelSource | None:
        """The model called `name` (in `dir` mode any safe folder name is one)."""
        for source in self.fixed:
            if source.name == name:
                return source
        if self.directory is not None and is_model_name(name):
            return ModelSource(name, self.directory.child(name), self.signature_key)
        return None

    def locate(self, bucket: str, key: str) -> tuple[str, str] | None:
        """(model, key relative to the model's prefix), or None when the key belongs to none of ours."""
        if isinstance(self.directory, S3Location):
            if bucket != self.directory.bucket or not key.startswith(self.directory.key_prefix):
                return None
            name, slash, rest = key[len(self.directory.key_prefix) :].partition("/")
            return (name, rest) if slash and is_model_name(name) else None
        for prefix in _ancestors(key):
            owner = self._by_prefix.get((bucket, prefix))
            if owner is not None:
                return owner, key[len(prefix) + 1 :] if prefix else key
        return None

    def locations(self) -> Iterator[Location]:
        if self.directory is not None:
            yield self.directory
        for source in self.fixed:
            yield source.location

    @property
    def is_local(self) -> bool:
        return all(isinstance(location, LocalLocation) for location in self.locations())


def is_model_name(name: str) -> bool:
    return bool(name) and "/" not in name and unsafe_key_reason(name) is None and not name.startswith(".")


def _ancestors(key: str) -> Iterator[str]:
    """The prefixes a key lies under, longest first: "a/b/c" -> "a/b", "a", ""."""
    parts = key.split("/")[:-1]
    for end in range(len(parts), -1, -1):
        yield "/".join(parts[:end])
