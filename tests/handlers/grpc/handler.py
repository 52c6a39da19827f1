"""A Cortex 0.35 gRPC handler (`handler.protobuf_path: predictor.proto`) over the pickled models of ../tagged.py.

Each RPC of predictor.proto has its method; `proto_module_pb2` is the module protoc generated.
"""

import os
import threading
import time

from tagged import Handler as HttpHandler  # the spec's python_path is tests/handlers


class Handler:
    def __init__(self, config, model_client, proto_module_pb2):
        self.models = HttpHandler(config, model_client)
        self.pb2 = proto_module_pb2
        self.config = config
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()

    def load_model(self, model_path):
        return self.models.load_model(model_path)

    def _predict(self, sample):
        if sample.fail:
            raise RuntimeError("secret internal detail")
        model = self.models.client.get_model(sample.model or None, sample.version or "latest")
        rows = [list(sample.features)] if sample.features else [[5.1, 3.5, 1.4, 0.2]]
        return self.pb2.Prediction(prediction=float(model["estimator"].predict(rows)[0]), model=sample.model)

    def Predict(self, payload):
        return self._predict(payload)

    def PredictEach(self, payload, context):
        for sample in payload.samples:
            if not context.is_active():
                return
            yield self._predict(sample)

    def PredictSum(self, payload):
        return self.pb2.Prediction(prediction=sum(self._predict(sample).prediction for sample in payload))

    def PredictLive(self, payload):
        for sample in payload:
            yield self._predict(sample)

    def Greeting(self, context):
        """Also records how many RPCs ran at once: `config.hold` seconds each (threads_per_process bounds them)."""
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        time.sleep(float(self.config.get("hold", 0)))
        with self.lock:
            self.running -= 1
        context.set_trailing_metadata((("most-running", str(self.most_running)), ("pid", str(os.getpid()))))
        return self.pb2.Prediction(text=str(self.config.get("greeting", "")))
