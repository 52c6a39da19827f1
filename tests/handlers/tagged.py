"""The handler the integration tests serve: a Cortex 0.35 Python handler over pickled scikit-learn models.

A version folder may hold:
- `model.pkl`: the estimator (required);
- `FAIL`: load_model raises with the file's text (a broken version);
- `FAIL_IN_PROCESS`: load_model raises in the serving process of that number only (RELOADER_PROCESS);
- `SLOW`: load_model sleeps that many seconds first (a slow load);
- `MANIFEST`: names of files that must all be present, checked at load and on every request;
- `?slow=S` on a request: it takes S seconds; `GET /?modules=1`: whether botocore was ever imported here;
- `TAG`: a sidecar file whose text the answer repeats as `sidecar` (it must agree with the prediction).

Every answer says which process gave it (`pid`): processes_per_replica runs one Handler per process.

`GET /?stats=1` answers how many loaded objects are alive (weak references, after `gc.collect()`)
how many `load_model` calls each model had, and the most that ran at once per model (`overlap`): the
caching tests count with these.
"""

import gc
import os
import pickle
import sys
import threading
import time
import weakref


class Loaded(dict):
    """What load_model returns: a dict (the requests read it) that can be weakly referenced."""


class Handler:
    def __init__(self, config, model_client):
        self.client = model_client
        self.config = config
        self.alive = []  # weak references to every object load_model returned
        self.loads = {}
        self.running = {}  # model -> load_model calls running now
        self.overlap = {}  # model -> the most that ran at once
        self.lock = threading.Lock()

    def load_model(self, model_path):
        model = os.path.basename(os.path.dirname(model_path))
        with self.lock:
            self.loads[model] = self.loads.get(model, 0) + 1
            self.running[model] = self.running.get(model, 0) + 1
            self.overlap[model] = max(self.overlap.get(model, 0), self.running[model])
        try:
            return self._load(model_path)
        finally:
            with self.lock:
                self.running[model] -= 1

    def _load(self, model_path):
        files = set(os.listdir(model_path))
        if "FAIL" in files:
            with open(os.path.join(model_path, "FAIL")) as file:
                raise RuntimeError(file.read() or "this version is broken")
        if "FAIL_IN_PROCESS" in files:  # broken in one serving process only (processes_per_replica)
            with open(os.path.join(model_path, "FAIL_IN_PROCESS")) as file:
                if file.read().strip() == os.environ.get("RELOADER_PROCESS"):
                    raise RuntimeError(f"this version is broken in process {os.environ['RELOADER_PROCESS']}")
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
        sidecar = None
        if "TAG" in files:
            with open(os.path.join(model_path, "TAG")) as file:
                sidecar = float(file.read())
        loaded = Loaded(estimator=estimator, path=model_path, manifest=manifest, sidecar=sidecar)
        with self.lock:
            self.alive.append(weakref.ref(loaded))
        return loaded

    def handle_post(self, payload, query_params):
        if query_params.get("slow"):
            time.sleep(float(query_params["slow"]))
        model = self.client.get_model(query_params.get("model"), query_params.get("version", "latest"))
        missing = [name for name in model["manifest"] if not os.path.exists(os.path.join(model["path"], name))]
        rows = payload.get("rows", [[5.1, 3.5, 1.4, 0.2]])
        prediction = float(model["estimator"].predict(rows)[0])
        return {"prediction": prediction, "missing": missing, "sidecar": model["sidecar"], "pid": os.getpid()}

    def handle_get(self, query_params):
        if query_params.get("modules"):  # which process answers, and whether it ever imported an AWS SDK
            limits = {name: os.environ.get(name) for name in ("RELOADER_PROCESS", "OMP_NUM_THREADS")}
            return {"pid": os.getpid(), "botocore": "botocore" in sys.modules, **limits}
        if query_params.get("stats"):
            gc.collect()
            with self.lock:
                alive = sum(1 for reference in self.alive if reference() is not None)
                return {"alive": alive, "loads": dict(self.loads), "overlap": dict(self.overlap), "pid": os.getpid()}
        return {"config": self.config}
