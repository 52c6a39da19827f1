"""A TF Serving for the tests: ModelService and PredictionService from tensorflow-serving-api's own
generated code, loading SavedModels with TensorFlow, so predictions are real.

It behaves as TF Serving does where the agent depends on it:
- HandleReloadConfigRequest replaces the whole config (only `specific` version policies); it
  answers once the models new to it have a version AVAILABLE, or with an error when they fail,
  holding its config lock meanwhile, as ServerCore::ReloadConfig does (so a call whose caller
  gave up still runs to its end, and the calls waiting for the lock run in no particular order);
- a poller, TF Serving's file-system polling, loads the configured versions whose folder exists
  and unloads those the config or the disk no longer has;
- a version goes START -> LOADING -> AVAILABLE after `--load-delay` seconds (or END with an error
  status when TensorFlow cannot load it); unloading goes UNLOADING -> END;
- GetModelStatus reports every version it has seen, END ones included, and NOT_FOUND for a model
  it never saw; Predict and GetModelMetadata answer for AVAILABLE versions only, else NOT_FOUND.

It runs as its own process (`python -m tests.tfserving.server --port N`), so a test can kill it
and start it again, empty, as a restarted TF Serving is. Each state change is appended to
`--events` as a JSON line with its wall-clock time, and so is each config it is sent.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

States = get_model_status_pb2.ModelVersionStatus
LIVE = (States.START, States.LOADING, States.AVAILABLE)
UNKNOWN_CODE = 2  # tensorflow.error.Code.UNKNOWN
INVALID_ARGUMENT_CODE = 3
NEW_MODEL_TIMEOUT = 60.0


@dataclass
class Version:
    state: int
    error: str = ""
    path: str = ""
    model: Any = None  # what tf.saved_model.load returned
    signatures: Any = None  # the SavedModel's SignatureDef map, as TF Serving's metadata gives it


class FakeTFServing(model_service_pb2_grpc.ModelServiceServicer, prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, load_delay: float, poll_interval: float, events: Path | None) -> None:
        self._load_delay = load_delay
        self._poll_interval = poll_interval
        self._events = events
        self._changed = threading.Condition()
        self._reloading = threading.Lock()  # ServerCore's config_mu_: held until the new models are available
        self._config: dict[str, tuple[str, set[int]]] = {}  # model -> (base path, versions)
        self._versions: dict[tuple[str, int], Version] = {}
        self._loads = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="load")
        self._stop = threading.Event()
        threading.Thread(target=self._poll_forever, name="poll", daemon=True).start()

    # -- ModelService ----------------------------------------------------------------------
    def HandleReloadConfigRequest(self, request: Any, context: Any) -> Any:
        config = {}
        for entry in request.config.model_config_list.config:
            policy = entry.model_version_policy
            if policy.WhichOneof("policy_choice") != "specific":
                return _reload_response(
                    INVALID_ARGUMENT_CODE, f"{entry.name}: this fake knows the specific policy only"
                )
            config[entry.name] = (entry.base_path, set(policy.specific.versions))
        with self._reloading:
            with self._changed:
                new_models = set(config) - set(self._config)
                self._config = config
                self._record({"config": {name: sorted(versions) for name, (_, versions) in config.items()}})
            self.poll()
            failed = self._await_new_models(new_models)
        if failed:
            return _reload_response(UNKNOWN_CODE, f"{len(failed)} model(s) did not become available: {failed}")
        return _reload_response(0, "")

    def GetModelStatus(self, request: Any, context: Any) -> Any:
        name = request.model_spec.name
        with self._changed:
            versions = {v: version for (m, v), version in self._versions.items() if m == name}
        if request.model_spec.HasField("version"):
            wanted = request.model_spec.version.value
            versions = {v: version for v, version in versions.items() if v == wanted}
        if not versions:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for number, version in sorted(versions.items()):
            status = response.model_version_status.add(version=number, state=version.state)
            if version.error:
                status.status.error_code = UNKNOWN_CODE
                status.status.error_message = version.error
        return response

    # -- PredictionService -----------------------------------------------------------------
    def Predict(self, request: Any, context: Any) -> Any:
        number, version = self._available(request.model_spec, context)
        signature_name = request.model_spec.signature_name or "serving_default"
        function = version.model.signatures.get(signature_name)
        if function is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{signature_name}" not found.')
        try:
            inputs = {name: tf.constant(tf.make_ndarray(tensor)) for name, tensor in request.inputs.items()}
            outputs = function(**inputs)
        except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = number
        response.model_spec.signature_name = signature_name
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response

    def GetModelMetadata(self, request: Any, context: Any) -> Any:
        number, version = self._available(request.model_spec, context)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = number
        response.metadata["signature_def"].Pack(version.signatures)
        return response

    def _available(self, spec: Any, context: Any) -> tuple[int, Version]:
        with self._changed:
            available = {
                v: ver for (m, v), ver in self._versions.items() if m == spec.name and ver.state == States.AVAILABLE
            }
        number = spec.version.value if spec.HasField("version") else max(available, default=-1)
        if number not in available:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({spec.name}, {number})")
        return number, available[number]

    # -- file-system polling, loading, unloading --------------------------------------------
    def poll(self) -> None:
        with self._changed:
            aspired = {
                (model, number): f"{base}/{number}"
                for model, (base, numbers) in self._config.items()
                for number in numbers
                if os.path.isdir(f"{base}/{number}")
            }
            for key, path in aspired.items():
                current = self._versions.get(key)
                if current is None or (current.state == States.END and not current.error):
                    self._set(key, Version(States.START, path=path))
                    self._loads.submit(self._load, key, path)
            for key, version in list(self._versions.items()):
                if key not in aspired and version.state == States.AVAILABLE:
                    self._set(key, Version(States.UNLOADING))
                    self._loads.submit(self._unload, key)

    def _poll_forever(self) -> None:
        while not self._stop.wait(self._poll_interval):
            self.poll()

    def _load(self, key: tuple[str, int], path: str) -> None:
        with self._changed:
            self._set(key, Version(States.LOADING, path=path))
        time.sleep(self._load_delay)  # a real load takes a moment: the window the agent must not route into
        try:
            model = tf.saved_model.load(path)
            signatures = _signature_defs(Path(path))
        except Exception as error:  # TF Serving reports any load failure as the version's status
            with self._changed:
                self._set(key, Version(States.END, error=f"{type(error).__name__}: {error}"[:500], path=path))
            return
        with self._changed:
            self._set(key, Version(States.AVAILABLE, path=path, model=model, signatures=signatures))
        # A version dropped from the config while it loaded is unloaded by the next poll.

    def _unload(self, key: tuple[str, int]) -> None:
        with self._changed:
            self._set(key, Version(States.END))

    def _await_new_models(self, models: set[str]) -> list[str]:
        """Wait until each new model has a version AVAILABLE or all of its versions ended; return the failed."""

        def settled() -> bool:
            return all(self._model_settled(model) for model in models)

        with self._changed:
            self._changed.wait_for(settled, timeout=NEW_MODEL_TIMEOUT)
            return sorted(m for m in models if not self._has_available(m))

    def _model_settled(self, model: str) -> bool:
        mine = [version for (m, _), version in self._versions.items() if m == model]
        return self._has_available(model) or (bool(mine) and all(version.state == States.END for version in mine))

    def _has_available(self, model: str) -> bool:
        return any(m == model and version.state == States.AVAILABLE for (m, _), version in self._versions.items())

    def _set(self, key: tuple[str, int], version: Version) -> None:
        """Record a state change (call with the lock held)."""
        self._versions[key] = version
        self._changed.notify_all()
        line: dict[str, Any] = {"model": key[0], "version": key[1], "state": States.State.Name(version.state)}
        if version.error:
            line["error"] = version.error
        self._record(line)

    def _record(self, line: dict[str, Any]) -> None:
        """Append an event with its wall-clock time (call with the lock held)."""
        if self._events is not None:
            with self._events.open("a") as file:
                file.write(json.dumps({"t": time.time(), **line}) + "\n")


def _signature_defs(folder: Path) -> Any:
    saved_model = saved_model_pb2.SavedModel()
    if (folder / "saved_model.pb").exists():
        saved_model.ParseFromString((folder / "saved_model.pb").read_bytes())
    else:
        from google.protobuf import text_format

        text_format.Parse((folder / "saved_model.pbtxt").read_text(), saved_model)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in saved_model.meta_graphs[0].signature_def.items():
        signatures.signature_def[key].CopyFrom(signature)
    return signatures


def _reload_response(code: int, message: str) -> Any:
    response = model_management_pb2.ReloadConfigResponse()
    response.status.error_code = code
    response.status.error_message = message
    return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--load-delay", type=float, default=0.5, help="seconds a version stays LOADING")
    parser.add_argument("--poll-interval", type=float, default=0.2, help="seconds between file-system polls")
    parser.add_argument("--events", type=Path, help="append state changes here as JSON lines")
    args = parser.parse_args()
    fake = FakeTFServing(args.load_delay, args.poll_interval, args.events)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(fake, server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(fake, server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    print(f"fake TF Serving listening on 127.0.0.1:{args.port}", flush=True)
    server.wait_for_termination()
    sys.exit(0)


if __name__ == "__main__":
    main()
