"""An example gRPC handler, as Cortex 0.35 ran one: the iris classifier of the base, behind iris.proto's service."""

import os
import pickle

LABELS = ["setosa", "versicolor", "virginica"]


class Handler:
    def __init__(self, config, model_client, proto_module_pb2):
        self.client = model_client
        self.pb2 = proto_module_pb2

    def load_model(self, model_path):
        with open(os.path.join(model_path, "model.pkl"), "rb") as file:
            return pickle.load(file)

    def Predict(self, payload, context):
        model = self.client.get_model(payload.model or None, payload.version or "latest")
        features = [[payload.sepal_length, payload.sepal_width, payload.petal_length, payload.petal_width]]
        label = int(model.predict(features)[0])
        return self.pb2.Prediction(label=LABELS[label])

    def PredictEach(self, payload, context):
        for sample in payload.samples:
            yield self.Predict(sample, context)
