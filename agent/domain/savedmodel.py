"""Is a SavedModel version folder complete? A structural check over its listing, for the TensorFlow handler.

TF Serving loads whatever folder it is pointed at; a version still being uploaded (no marker
needed) must therefore never be offered to it. A SavedModel is whole when it holds its graph
(`saved_model.pb` or `saved_model.pbtxt`), the variables index and every data shard the shard
names announce (`variables/variables.data-<i>-of-<n>` for each i in 0..n-1).

Cortex 0.35's second layout, for Inferentia, is the graph alone: Neuron-compiled models carry
their weights in the graph, and TF Serving skips the checkpoint restore when there is no
variables index. Such a version is complete only when the user says so (its ready marker is
there, or the API declares Inferentia with `compute.inf`): a graph alone may also be a version
whose large variables shard is still being uploaded (multipart uploads are invisible until
they complete), which is TF Serving's issue #1086 and the reason this check exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from agent.domain.versions import CompletenessCheck, ObjectInfo

GRAPH_FILES = ("saved_model.pb", "saved_model.pbtxt")
VARIABLES = "variables/"
VARIABLES_INDEX = "variables/variables.index"
_SHARD = re.compile(r"variables/variables\.data-(\d+)-of-(\d+)")

GRAPH_ONLY_HINT = (
    "it has no variables/ (neither variables/variables.index nor a data shard); a SavedModel that is "
    "only its graph (as compiled for Inferentia) loads once declared complete: set reloading.ready_marker "
    "and write the marker into every version (with a marker set, versions without one are unloaded), "
    "or, for Inferentia models, set compute.inf above 0"
)


def savedmodel_check(inferentia: bool) -> CompletenessCheck:
    """The check for an API; with `inferentia` (`compute.inf` > 0) a version that is only its graph is complete."""

    def check(objects: tuple[ObjectInfo, ...], marked: bool) -> str | None:
        return savedmodel_incomplete(objects, graph_only_complete=marked or inferentia)

    return check


def savedmodel_incomplete(objects: Iterable[ObjectInfo], graph_only_complete: bool = False) -> str | None:
    """Why the version folder (keys relative to it) is not a complete SavedModel yet, or None when it is.

    `graph_only_complete`: the user declared the version complete (its marker, or `compute.inf`), so a
    graph without any `variables/` entry is whole; once a `variables/` entry exists, its shards must be.
    """
    keys = {obj.key for obj in objects}
    if not any(name in keys for name in GRAPH_FILES):
        problem: str | None = "no saved_model.pb (or saved_model.pbtxt) at the top of the version"
    elif not any(key.startswith(VARIABLES) for key in keys):
        problem = None if graph_only_complete else GRAPH_ONLY_HINT
    elif VARIABLES_INDEX not in keys:
        problem = f"{VARIABLES_INDEX} is missing"
    else:
        problem = _shard_problem(keys)
    return f"not a complete SavedModel yet: {problem}" if problem else None


def _shard_problem(keys: set[str]) -> str | None:
    shards = {(int(match[1]), int(match[2])) for key in keys if (match := _SHARD.fullmatch(key))}
    if not shards:
        return "no variables/variables.data-*-of-* shard"
    counts = sorted({count for _, count in shards})
    if len(counts) > 1:
        return f"its variables shards disagree on their count (-of- {counts})"
    count = counts[0]
    indexes = {index for index, _ in shards}
    if max(indexes) >= count:
        return f"variables shard {max(indexes)} is beyond the announced count {count}"
    missing = sorted(set(range(count)) - indexes)
    if missing:
        names = ", ".join(f"variables/variables.data-{index:05d}-of-{count:05d}" for index in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return f"missing {names}{more}"
    return None
