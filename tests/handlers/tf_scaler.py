"""The TensorFlow handler the integration tests serve: Cortex 0.35's TensorFlow handler interface.

POST {"x": [[...]]} with optional `model` and `version` query parameters answers TF Serving's "y".
"""

import os


class Handler:
    def __init__(self, tensorflow_client, config):
        self.client = tensorflow_client
        self.config = config

    def handle_post(self, payload, query_params):
        model_input = {"x": (payload or {}).get("x", [[1.0, 2.0]])}
        prediction = self.client.predict(model_input, query_params.get("model"), query_params.get("version", "latest"))
        return {"y": prediction["y"], "pid": os.getpid()}  # which process answered (processes_per_replica)
