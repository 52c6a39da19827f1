"""The handler the integration tests serve: a Cortex 0.35 Python handler over pickled scikit-learn models.

A version folder may hold:
- `model.pkl`: the estimator (required);
- `FAIL`: load_model raises with the file's text (a broken version);
- `SLOW`: load_model sleeps that many seconds first (a slow load);
- `MANIFEST`: names of files that must all be present, checked at load and on every request.
"""

import os
import pickle
import time


class Handler:
    def __init__(self, config, model_client):
        self.client = model_client
        self.config = config

    def load_model(self, model_path):
        files = set(os.listdir(model_path))
        if "FAIL" in files:
            with open(os.path.join(model_path, "FAIL")) as file:
                raise RuntimeError(file.read() or "this version is broken")
        if "SLOW" in files:
            with open(os.path.join(model_path, "SLOW")) as file:
                time.sleep(float(file.read()))
        manifest = []
        if "MANIFEST" in files:
            with open(os.path.join(model_path, "MANIFEST")) as file:
                manifest = file.read().split()
            missing = [name for name in manifest if name not in files]
            if missing:
                raise RuntimeError(f"incomplete version: missing {missing}")
        with open(os.path.join(model_path, "model.pkl"), "rb") as file:
            estimator = pickle.load(file)
        return {"estimator": estimator, "path": model_path, "manifest": manifest}

    def handle_post(self, payload, query_params):
        model = self.client.get_model(query_params.get("model"), query_params.get("version", "latest"))
        missing = [name for name in model["manifest"] if not os.path.exists(os.path.join(model["path"], name))]
        rows = payload.get("rows", [[5.1, 3.5, 1.4, 0.2]])
        return {"prediction": float(model["estimator"].predict(rows)[0]), "missing": missing}

    def handle_get(self, query_params):
        return {"config": self.config}
