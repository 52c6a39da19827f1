"""Small SavedModels made with TensorFlow for the tests, and their upload to S3 as model versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

INPUT = [[1.0, 2.0]]  # what the tests send as "x"


def save_scaler(folder: Path, scale: float, sharded: bool = False) -> Path:
    """A SavedModel computing {"y": x * scale} for "x" float32 [batch, n], signature serving_default.

    `sharded` splits its variables over several `variables.data-*-of-*` shards.
    """
    module = tf.Module()
    module.scale = tf.Variable(scale, dtype=tf.float32)
    module.offset = tf.Variable([0.0, 0.0], dtype=tf.float32)  # a second variable, to fill a second shard

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="x")])
    def serve(x: Any) -> dict[str, Any]:
        return {"y": x * module.scale + tf.reduce_sum(module.offset)}

    options = None
    if sharded:
        policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=4)
        options = tf.saved_model.SaveOptions(experimental_sharding_callback=policy)
    tf.saved_model.save(module, str(folder), signatures={"serving_default": serve}, options=options)
    return folder


def save_graph_only(folder: Path, scale: float) -> Path:
    """A SavedModel that is only its graph: {"y": x * scale} with the scale a constant, so no `variables/`.

    Cortex 0.35's Inferentia layout (Neuron-compiled models carry their weights in the graph). TF2's
    `tf.saved_model.save` writes `variables/` even without variables; TF1's builder writes an empty
    folder, which holds no file to upload.
    """
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, None], name="x")
        y = tf.multiply(x, tf.constant(scale, tf.float32), name="y")
        with tf.compat.v1.Session(graph=graph) as session:
            builder = tf.compat.v1.saved_model.Builder(str(folder))
            signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            builder.add_meta_graph_and_variables(
                session, [tf.saved_model.SERVING], signature_def_map={"serving_default": signature}
            )
            builder.save()
    return folder


def save_summer(folder: Path) -> Path:
    """A SavedModel computing {"total": the sum of each row} for "ids" int64 [batch, 3], signature serving_default."""
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.int64, name="ids")])
    def serve(ids: Any) -> dict[str, Any]:
        return {"total": tf.reduce_sum(ids, axis=1)}

    tf.saved_model.save(module, str(folder), signatures={"serving_default": serve})
    return folder


def files_of(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


class SavedModels:
    """Writes SavedModel versions to S3 (`<prefix>/<version>/...`), built in a local work folder."""

    def __init__(self, s3_client: Any, bucket: str, workdir: Path) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.workdir = workdir
        self._count = 0

    def build(self, scale: float, sharded: bool = False, graph_only: bool = False) -> Path:
        self._count += 1
        folder = self.workdir / f"savedmodel-{self._count}"
        return save_graph_only(folder, scale) if graph_only else save_scaler(folder, scale, sharded)

    def put(
        self,
        prefix: str,
        version: int,
        scale: float,
        sharded: bool = False,
        skip: tuple[str, ...] = (),
        graph_only: bool = False,
    ) -> Path:
        """Upload a version predicting x * scale, without the files named in `skip`; return its local folder."""
        folder = self.build(scale, sharded, graph_only)
        for name in files_of(folder):
            if name not in skip:
                self.put_file(prefix, version, folder, name)
        return folder

    def put_folder(self, prefix: str, version: int, folder: Path) -> None:
        for name in files_of(folder):
            self.put_file(prefix, version, folder, name)

    def put_file(self, prefix: str, version: int, folder: Path, name: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=f"{prefix}/{version}/{name}", Body=(folder / name).read_bytes())
