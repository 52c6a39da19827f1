"""An example Python handler, unchanged from what Cortex 0.35 ran: a scikit-learn classifier of iris flowers."""

import os
import pickle

LABELS = ["setosa", "versicolor", "virginica"]


class Handler:
    def __init__(self, config, model_client):
        self.client = model_client
        self.feature_order = config.get("features", ["sepal_length", "sepal_width", "petal_length", "petal_width"])

    def load_model(self, model_path):
        with open(os.path.join(model_path, "model.pkl"), "rb") as file:
            return pickle.load(file)

    def handle_post(self, payload, query_params):
        version = query_params.get("version", "latest")
        model = self.client.get_model(query_params.get("model"), version)
        features = [[payload[name] for name in self.feature_order]]
        label = int(model.predict(features)[0])
        return {"label": LABELS[label], "version": getattr(model, "reloader_version", None)}
