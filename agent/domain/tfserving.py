"""What TF Serving should serve and what its answers mean: the pure half of the TensorFlow handler.

The agent owns TF Serving's model config. Every reload sends the complete list (TF Serving
unloads whatever it omits), each model with a `specific` version policy naming exactly the
versions to serve. Those are internal versions: the folder `<base>/<model>/<internal>/` of one
download, a fresh number each time, so an in-place update of version 3 loads beside the copy
that serves until it is AVAILABLE. Users keep naming their own versions; the registry maps
them to a `Servable` naming the internal one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from agent.domain.errors import PermanentError

# TF Serving's ModelVersionStatus.State names; UNKNOWN also stands for a state we do not know.
State = Literal["UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END"]
Progress = Literal["pending", "available", "failed"]

# Signatures tried in this order when the spec sets no signature_key: TensorFlow's default
# serving signature, then the key Cortex looked for.
DEFAULT_SIGNATURES = ("serving_default", "predict")


@dataclass(frozen=True)
class Servable:
    """What the registry serves for a TensorFlow model version: where to send its predictions."""

    model: str
    version: int  # the user's version
    internal_version: int  # TF Serving's version: the folder it loaded
    signature_key: str
    inputs: Mapping[str, int] = field(default_factory=dict)  # input name -> tensorflow DataType number


@dataclass(frozen=True)
class ModelEntry:
    """One model of TF Serving's ModelConfigList."""

    name: str
    base_path: str
    versions: tuple[int, ...]


@dataclass(frozen=True)
class VersionState:
    """One version as GetModelStatus reports it."""

    state: State
    error: str | None = None  # the version's status message when its error code is not OK


def model_config(desired: Mapping[str, Iterable[int]], base_path: Callable[[str], str]) -> tuple[ModelEntry, ...]:
    """The complete config for `desired` internal versions per model, in a stable order.

    A model without versions is left out: TF Serving would wait forever for it to load.
    """
    return tuple(
        ModelEntry(name, base_path(name), tuple(sorted(set(versions))))
        for name, versions in sorted(desired.items())
        if versions
    )


@dataclass(frozen=True)
class Send:
    """A config call to make: the complete config, and the call's deadline."""

    entries: tuple[ModelEntry, ...]
    timeout: float


def config_to_send(
    entries: tuple[ModelEntry, ...],
    previous: tuple[ModelEntry, ...] | None,
    force: bool,
    rpc_timeout: float,
    load_timeout: float,
) -> Send | None:
    """The call that brings TF Serving from the config it last took (`previous`, None: unknown) to
    `entries`, or None when it has that very config. `force`: send it all the same (TF Serving may
    have lost it). TF Serving answers a call that adds a model only once that model loaded, so such
    a call (and a forced one: every model may be new to it) waits as long as a load may take."""
    if entries == previous and not force:
        return None
    known = {entry.name for entry in previous} if previous is not None else set()
    adds = force or any(entry.name not in known for entry in entries)
    return Send(entries, rpc_timeout + (load_timeout if adds else 0.0))


def load_progress(states: Mapping[int, VersionState], version: int) -> tuple[Progress, str | None]:
    """How a version asked for is doing: still pending, available, or failed (with why)."""
    status = states.get(version)
    if status is None or status.state in ("UNKNOWN", "START", "LOADING"):
        return "pending", None
    if status.state == "AVAILABLE":
        return "available", None
    return "failed", status.error or f"TF Serving reports it {status.state} before it became available"


def is_unloaded(states: Mapping[int, VersionState], version: int) -> bool:
    status = states.get(version)
    return status is None or status.state == "END"


LIVE_STATES = ("START", "LOADING", "AVAILABLE")


def lost_versions(confirmed: Iterable[int], states: Mapping[int, VersionState]) -> list[int]:
    """Versions that were AVAILABLE and that TF Serving no longer serves nor loads (e.g. after a restart)."""
    return sorted(
        version for version in confirmed if version not in states or states[version].state in ("UNLOADING", "END")
    )


def extra_versions(desired: Iterable[int], leaving: Iterable[int], states: Mapping[int, VersionState]) -> list[int]:
    """Versions TF Serving serves or loads that the config does not name, other than those just dropped
    (`leaving`: TF Serving unloads them in a moment). A late config call applied after a newer one
    (TF Serving serialises reloads, but not in the order they were sent) leaves such versions."""
    expected = set(desired) | set(leaving)
    return sorted(v for v, status in states.items() if status.state in LIVE_STATES and v not in expected)


def config_drift(
    desired: Mapping[str, Iterable[int]],
    confirmed: Mapping[str, Iterable[int]],
    leaving: Iterable[tuple[str, int]],
    reported: Mapping[str, Mapping[int, VersionState]],
) -> str | None:
    """Why what TF Serving reports (`reported`, per model) differs from the config, or None when it agrees:
    versions it confirmed and lost (a restart), or versions it serves that the config omits (a late call),
    other than those just dropped (`leaving`)."""
    leaving = set(leaving)
    for model in sorted(reported):
        states = reported[model]
        lost = lost_versions(confirmed.get(model, ()), states)
        if lost:
            return f"it lost versions {lost} of {model!r}"
        extra = extra_versions(desired.get(model, ()), {v for m, v in leaving if m == model}, states)
        if extra:
            return f"it serves versions {extra} of {model!r} that the config omits"
    return None


def choose_signature(signatures: Mapping[str, Mapping[str, int]], configured: str | None, where: str) -> str:
    """The signature predictions use: the configured one, else the only one, else a default one.

    Keys starting with "__" (such as `__saved_model_init_op`) are TensorFlow's own, never served.
    """
    usable = sorted(key for key in signatures if not key.startswith("__"))
    if configured is not None:
        if configured not in usable:
            raise PermanentError(f"{where}: signature_key {configured!r} is not in the SavedModel; found {usable}")
        return configured
    if len(usable) == 1:
        return usable[0]
    for key in DEFAULT_SIGNATURES:
        if key in usable:
            return key
    raise PermanentError(
        f"{where}: the SavedModel has {len(usable)} signatures {usable} and no signature_key says which "
        "to use; set handler.models.signature_key"
    )
