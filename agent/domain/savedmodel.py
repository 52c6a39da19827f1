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
    if not any(name in keys for name in GRAPH_FILES):
        return "not a complete SavedModel yet: no saved_model.pb (or saved_model.pbtxt) at the top of the version"
    if VARIABLES_INDEX not in keys:
        return f"not a complete SavedModel yet: {VARIABLES_INDEX} is missing"
    shards = [(int(match[1]), int(match[2])) for key in keys if (match := _SHARD.fullmatch(key))]
    if not shards:
        return "not a complete SavedModel yet: no variables/variables.data-*-of-* shard"
    counts = sorted({count for _, count in shards})
    if len(counts) > 1:
        return f"variables shards disagree on their count: found shards 'of' {counts}"
    count = counts[0]
    missing = sorted(set(range(count)) - {index for index, _ in shards})
    if missing:
        names = ", ".join(f"variables.data-{index:05d}-of-{count:05d}" for index in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return f"not a complete SavedModel yet: missing variables shard(s) {names}{more}"
    beyond = sorted(index for index, _ in shards if index >= count)
    if beyond:
        return f"variables shard index {beyond[0]} is beyond the announced count {count}"
    return None
