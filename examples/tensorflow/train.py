"""Train a tiny TensorFlow model, Celsius to Fahrenheit, and save it as a SavedModel version folder.

    python train.py OUT_DIR [--steps 400]

Few steps give a rough model, many an exact one: two versions that answer differently. Upload
one as a version with `reloader push OUT_DIR s3://reloader-demo/models/temperature/ --version 1`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tensorflow as tf


class Temperature(tf.Module):
    def __init__(self) -> None:
        self.weight = tf.Variable(0.0)
        self.bias = tf.Variable(0.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="celsius")])
    def __call__(self, celsius: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"fahrenheit": (self.weight * celsius / 100.0 + self.bias) * 100.0}


def train(steps: int, learning_rate: float = 0.5) -> Temperature:
    """Gradient descent on (celsius, fahrenheit) pairs, both scaled by 1/100."""
    celsius = np.linspace(-40.0, 100.0, 50, dtype=np.float32)
    fahrenheit = celsius * 1.8 + 32.0
    model = Temperature()
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(celsius)["fahrenheit"] / 100.0 - fahrenheit / 100.0) ** 2)
        weight, bias = tape.gradient(loss, [model.weight, model.bias])
        model.weight.assign_sub(learning_rate * weight)
        model.bias.assign_sub(learning_rate * bias)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="the version folder to write")
    parser.add_argument("--steps", type=int, default=400, help="training steps (default 400)")
    args = parser.parse_args(argv)
    model = train(args.steps)
    tf.saved_model.save(model, str(args.out_dir), signatures={"serving_default": model.__call__})
    print(f"saved {args.out_dir}: 100 °C -> {float(model(tf.constant([100.0]))['fahrenheit'][0]):.1f} °F")


if __name__ == "__main__":
    main()
