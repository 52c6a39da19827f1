"""Is a SavedModel version folder complete? A structural check over its listing, for the TensorFlow handler.

TF Serving loads whatever folder it is pointed at; a version still being uploaded (no marker
needed) must therefore never be offered to it. A SavedModel is whole when it holds its graph
(`saved_model.pb` or `saved_model.pbtxt`), the variables index and every data shard the shard
names announce (`variables/variables.data-<i>-of-<n>` for each i in 0..n-1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from agent.domain.versions import ObjectInfo

GRAPH_FILES = ("saved_model.pb", "saved_model.pbtxt")
VARIABLES_INDEX = "variables/variables.index"
_SHARD = re.compile(r"variables/variables\.data-(\d+)-of-(\d+)")


def savedmodel_incomplete(objects: Iterable[ObjectInfo]) -> str | None:
    """Why the version folder (keys relative to it) is not a complete SavedModel yet, or None when it is."""
    keys = {obj.key for obj in objects}
    problem = _missing_file(keys) or _shard_problem(keys)
    return f"not a complete SavedModel yet: {problem}" if problem else None


def _missing_file(keys: set[str]) -> str | None:
    if not any(name in keys for name in GRAPH_FILES):
        return "no saved_model.pb (or saved_model.pbtxt) at the top of the version"
    if VARIABLES_INDEX not in keys:
        return f"{VARIABLES_INDEX} is missing"
    return None


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
