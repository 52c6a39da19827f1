"""`processes_per_replica`: what the agent and its serving processes tell each other, and the pure rules
around them (thread limits, the per-process column of `/models`, restart backoff).

One agent per replica owns the index, the disk store and every AWS call; N serving processes each
run the user's Handler and load, from the store, the versions the agent says are there. The agent
keeps the manifest (the versions every process should hold: one `Entry` each) and sends each process
the whole manifest when it connects (`Snapshot`), then every change (`Put`, `Drop`). A process answers
each with a `Report` or `Dropped`, so the agent knows, per process, what is loaded; it sends nothing
unasked but `Started` (its snapshot is loaded and it takes requests) and `Ask` (`/models` and
`/metrics`, which the agent answers for the whole replica). The messages are plain values, pickled
over a private socket pair (agent.boundaries.channel).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# BLAS / OpenMP pools size themselves to every core by default: N processes would each start one
# thread per core and oversubscribe them. Each process gets its share, unless the user set them.
THREAD_LIMIT_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@dataclass(frozen=True)
class Entry:
    """One version a serving process should hold: load `path` (Python handler), or take `value` as it is
    (TensorFlow handler: TF Serving loaded it; the process only needs to know what to predict with)."""

    model: str
    version: int
    path: str  # the complete version folder: a new content is always a new folder (its name says which)
    value: Any = None
    load: bool = True


# -- agent -> serving process -----------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The whole manifest, sent once when a process connects: it loads all of it before it serves.
    With caching, also which version "latest" means for each model (as `Latest` says)."""

    entries: tuple[Entry, ...]
    latest: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Latest:
    """With caching: which version "latest" of `model` means now (None: none yet), as the agent
    resolves it from its index (agent.domain.caching.resolve); a request for "latest" in a process
    reads this instead of the index, which only the agent holds."""

    model: str
    version: int | None


@dataclass(frozen=True)
class Put:
    entry: Entry


@dataclass(frozen=True)
class Drop:
    model: str
    version: int


@dataclass(frozen=True)
class Readiness:
    """Whether the replica is ready (`/readyz`), told to every process when it changes."""

    ready: bool
    reason: str = ""


@dataclass(frozen=True)
class Reply:
    ask: int
    answer: Any


# -- serving process -> agent -----------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    pid: int


@dataclass(frozen=True)
class Refused:
    """The process cannot serve (its `Handler.__init__` raised): it exits after saying why."""

    reason: str


@dataclass(frozen=True)
class Report:
    """The process loaded `path` for (model, version), or failed to (`error`)."""

    model: str
    version: int
    path: str
    error: str | None = None


@dataclass(frozen=True)
class Dropped:
    model: str
    version: int


@dataclass(frozen=True)
class Started:
    """The snapshot is loaded: the process accepts connections from now on."""


@dataclass(frozen=True)
class Ask:
    """`what`: "models" (`argument`: the `?model=` filter), "metrics", "info", or, with caching, "load"
    (`argument`: (model, version) a request asked for and this process does not hold: the agent loads
    it into every process, once however many ask, and answers its version number or the error)."""

    ask: int
    what: str
    argument: Any = None


@dataclass(frozen=True)
class Touched:
    """With caching: the entries this process's requests used since it last said (the LRU's recency)."""

    entries: frozenset[tuple[str, int]]
    hits: int  # requests served from memory since the last Touched (each entry above counts one)


# -- pure rules ---------------------------------------------------------------------------------


def thread_limits(environ: Mapping[str, str], cpus: int, processes: int) -> dict[str, str]:
    """The BLAS / OpenMP thread limits a serving process gets: its share of the cores, at least 1,
    for each variable the user did not set."""
    share = str(max(1, cpus // max(1, processes)))
    return {name: share for name in THREAD_LIMIT_VARIABLES if name not in environ}


def usable_cpus(affinity: int, cpu_max: str | None) -> int:
    """The cores a replica may use: those it may run on (its affinity), fewer under a CPU quota
    (cgroup v2's `cpu.max`, "<quota> <period>" or "max <period>": what a container's CPU limit sets)."""
    if cpu_max:
        quota, _, period = cpu_max.strip().partition(" ")
        if quota.isdigit() and period.isdigit() and int(period) > 0:
            return max(1, min(affinity, math.ceil(int(quota) / int(period))))
    return max(1, affinity)


@dataclass(frozen=True)
class ProcessView:
    """What `/models` shows of one serving process."""

    number: int
    pid: int | None
    state: str  # "starting", "serving", "down"
    error: str | None  # why it could not start, or how it ended, until it serves again
    loaded: Mapping[tuple[str, int], tuple[str, str | None]]  # (model, version) -> (path, error or None)
    loading: frozenset[tuple[str, int]]


def version_in_process(process: ProcessView, model: str, version: int, path: str | None) -> dict[str, Any]:
    """One process's state of one version, as `/models` shows it per version under `processes`."""
    if process.state != "serving" and process.error is not None:  # down, or starting again after it failed
        return {"state": process.state, "error": process.error}
    key = (model, version)
    if key in process.loading:
        return {"state": "loading", "error": None}
    held = process.loaded.get(key)
    if held is None:
        return {"state": "not loaded" if process.state == "serving" else "starting", "error": None}
    held_path, error = held
    if error is not None:
        return {"state": "failed", "error": error}
    if path is not None and held_path != path:
        return {"state": "loading", "error": None}  # still on the previous content of this version
    return {"state": "ready", "error": None}


def with_processes(
    snapshot: Mapping[str, Any], processes: list[ProcessView], paths: Mapping[tuple[str, int], str]
) -> dict[str, Any]:
    """The `/models` view of the agent, with each version's state in every serving process added
    (`paths`: the manifest's folder per version, to tell a process still on older content)."""
    result: dict[str, Any] = {}
    for model, status in snapshot.items():
        versions = {}
        for version, version_status in status.get("versions", {}).items():
            number = int(version)
            path = paths.get((model, number))
            per_process = {
                str(process.number): version_in_process(process, model, number, path) for process in processes
            }
            versions[version] = {**version_status, "processes": per_process}
        result[model] = {**status, "versions": versions}
    return result
