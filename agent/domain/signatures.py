"""TensorFlow signatures in the short form Cortex 0.35's `/info` derived from TF Serving's metadata.

TF Serving's GetModelMetadata gives each SignatureDef in protobuf's JSON mapping: per tensor a
`name`, a `dtype` ("DT_FLOAT") and a `tensorShape` ({"dim": [{"size": "-1"}, {"size": "3"}]}, {} for
a scalar, {"unknownRank": true}). Cortex turned each into {"shape": [-1, 3], "type": "float32"};
these functions do the same, on plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# DataType names whose TensorFlow name is not the enum name without DT_, lowercased.
_DTYPE_NAMES = {"DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_HALF": "float16"}


def dtype_name(dtype: str) -> str:
    """TensorFlow's name for a DataType enum name: DT_FLOAT -> float32, DT_INT64 -> int64, DT_STRING -> string."""
    return _DTYPE_NAMES.get(dtype) or dtype.removeprefix("DT_").lower()


def tensor_shape(shape: Mapping[str, Any]) -> list[int] | list[str]:
    """[-1, 3] (-1: any size), ["scalar"] for rank 0, ["unknown"] for an unknown rank, as Cortex gave them."""
    if shape.get("unknownRank"):
        return ["unknown"]
    dims = shape.get("dim")
    if not dims:
        return ["scalar"]
    # protobuf's JSON mapping leaves out a field at its default: a dim without "size" has size 0
    return [int(dim.get("size", 0)) for dim in dims]


def tensor_signatures(tensors: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per tensor of a signature's `inputs` or `outputs`: {"shape": [...], "type": "float32"}."""
    return {
        alias: {"shape": tensor_shape(info.get("tensorShape", {})), "type": dtype_name(info.get("dtype", "DT_INVALID"))}
        for alias, info in sorted(tensors.items())
    }
