"""TF Serving over gRPC: reload its model config, read version states and signatures, predict.

The only module that talks to TF Serving (its ModelService and PredictionService, through
tensorflow-serving-api's generated code) and the only one that sees grpc errors: they become
TemporaryError or PermanentError here. Tensors are made and read with TensorFlow's own
`make_tensor_proto` / `make_ndarray`. Imported only for `handler.type: tensorflow`, so the
Python handler never needs TensorFlow installed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import grpc
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from agent.domain.errors import (
    PermanentError,
    ReloaderError,
    ReloadUnconfirmedError,
    TemporaryError,
    VersionGoneError,
)
from agent.domain.tfserving import ModelEntry, Servable, VersionState

# gRPC codes a later call may not meet again (the same names as TensorFlow's error codes).
TEMPORARY_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "CANCELLED"})

CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    # Reconnect within a second after TF Serving restarts, rather than after gRPC's growing backoff.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)

_STATE_NAMES = get_model_status_pb2.ModelVersionStatus.State


def connect(address: str) -> grpc.Channel:
    """An insecure channel to TF Serving (it listens on loopback or a pod-local address)."""
    return grpc.insecure_channel(address, options=list(CHANNEL_OPTIONS))


def open_tfserving(address: str, rpc_timeout: float, predict_timeout: float) -> tuple[grpc.Channel, TFServing]:
    """A channel to TF Serving at `address` and the client over it (close the channel when done)."""
    channel = connect(address)
    return channel, TFServing(channel, rpc_timeout, predict_timeout)


class TFServing:
    def __init__(self, channel: grpc.Channel, rpc_timeout: float = 30.0, predict_timeout: float = 60.0) -> None:
        self._models = model_service_pb2_grpc.ModelServiceStub(channel)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        self._rpc_timeout = rpc_timeout
        self._predict_timeout = predict_timeout

    def reload_config(self, entries: Sequence[ModelEntry], timeout: float | None = None) -> None:
        """Replace TF Serving's whole model config; what `entries` omits is unloaded.

        TF Serving answers once the config is applied, but for models new to it only once they are
        loaded (holding its config lock meanwhile): a deadline (`timeout`, default the RPC timeout)
        then raises ReloadUnconfirmedError, and the version states tell the outcome.
        """
        request = model_management_pb2.ReloadConfigRequest()
        config_list = request.config.model_config_list
        config_list.SetInParent()  # an empty list is still a list: it unloads everything
        for entry in entries:
            model = config_list.config.add(name=entry.name, base_path=entry.base_path, model_platform="tensorflow")
            model.model_version_policy.specific.versions.extend(entry.versions)
        what = f"reloading TF Serving's config ({len(entries)} model(s))"
        with _translated(what, {"DEADLINE_EXCEEDED": ReloadUnconfirmedError}):
            response = self._models.HandleReloadConfigRequest(request, timeout=timeout or self._rpc_timeout)
        if response.status.error_code != 0:
            code = _code_name(response.status.error_code)
            message = f"{what}: {code}: {response.status.error_message}"
            raise TemporaryError(message) if code in TEMPORARY_CODES else PermanentError(message)

    def model_status(self, model: str) -> dict[int, VersionState]:
        """Every version TF Serving knows of `model`, with its state; empty when it knows none."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        try:
            with _translated(f"reading the status of model {model!r} in TF Serving", {"NOT_FOUND": _NotFound}):
                response = self._models.GetModelStatus(request, timeout=self._rpc_timeout)
        except _NotFound:
            return {}
        states = {}
        for status in response.model_version_status:
            error = None
            if status.status.error_code != 0:
                error = status.status.error_message or _code_name(status.status.error_code)
            states[int(status.version)] = VersionState(_STATE_NAMES.Name(status.state), error)  # type: ignore[arg-type]
        return states

    def signatures(self, model: str, version: int) -> dict[str, dict[str, int]]:
        """The version's signatures: signature key -> input name -> tensorflow DataType number."""
        return {
            key: {name: int(info.dtype) for name, info in signature.inputs.items()}
            for key, signature in self._signature_map(model, version).signature_def.items()
        }

    def signature_defs(self, model: str, version: int) -> dict[str, Any]:
        """The version's SignatureDefs as JSON values (protobuf's JSON mapping, as Cortex 0.35's `/info` gave
        them): signature key -> {"inputs", "outputs": name -> {"name", "dtype", "tensorShape"}, "methodName"}."""
        signature_map = self._signature_map(model, version)
        return dict(json_format.MessageToDict(signature_map).get("signatureDef", {}))

    def _signature_map(self, model: str, version: int) -> Any:
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = model
        request.model_spec.version.value = version
        request.metadata_field.append("signature_def")
        with _translated(f"reading the signatures of {model!r} (TF Serving version {version})"):
            response = self._predictions.GetModelMetadata(request, timeout=self._rpc_timeout)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return signature_map

    def predict(self, servable: Servable, model_input: Any) -> dict[str, Any]:
        """Run the servable's signature on `model_input` (input name -> value); return output name -> value.

        Values are cast to the signature's input types, as Cortex did; each output comes back as the
        flat list of its values, strings decoded. VersionGoneError when TF Serving no longer has the version.
        """
        where = f"model {servable.model!r} version {servable.version}"
        request = predict_pb2.PredictRequest()
        request.model_spec.name = servable.model
        request.model_spec.version.value = servable.internal_version
        request.model_spec.signature_name = servable.signature_key
        for name, value in _checked_input(model_input, servable, where).items():
            dtype = tf.dtypes.as_dtype(servable.inputs[name]) if name in servable.inputs else None
            try:
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype=dtype))
            except (TypeError, ValueError) as error:
                expected = f"a {dtype.name} tensor" if dtype is not None else "a tensor"
                raise PermanentError(f"{where}: input {name!r}: expected {expected}, found {error}") from error
        with _translated(f"predicting with {where}", {"NOT_FOUND": VersionGoneError}):
            response = self._predictions.Predict(request, timeout=self._predict_timeout)
        # Flat lists of values per output, as Cortex 0.35's client returned them: handlers run unchanged.
        return {name: _plain(tf.make_ndarray(tensor).flatten().tolist()) for name, tensor in response.outputs.items()}


class _NotFound(ReloaderError):
    pass


@contextmanager
def _translated(what: str, special: Mapping[str, type[ReloaderError]] | None = None) -> Iterator[None]:
    """Turn grpc errors raised inside into ours, saying `what` failed; `special` maps codes to other classes."""
    try:
        yield
    except grpc.RpcError as error:
        code = error.code().name if isinstance(error, grpc.Call) else "UNKNOWN"
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        message = f"{what}: {code}: {details}"
        if special and code in special:
            raise special[code](message) from error
        if code in TEMPORARY_CODES:
            raise TemporaryError(message) from error
        raise PermanentError(message) from error


def _checked_input(model_input: Any, servable: Servable, where: str) -> Mapping[str, Any]:
    expected = sorted(servable.inputs)
    if not isinstance(model_input, Mapping):
        raise PermanentError(
            f"{where}: expected model_input to be a dict of input name -> value ({expected}), "
            f"found {type(model_input).__name__}"
        )
    missing = [name for name in expected if name not in model_input]
    if missing:
        raise PermanentError(
            f"{where}: signature {servable.signature_key!r} expects inputs {expected}; missing {missing}"
        )
    return model_input


def _plain(value: Any) -> Any:
    """make_ndarray(...).tolist() with bytes (string tensors) decoded, so the result is JSON-ready."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _code_name(code: int) -> str:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return str(status.name)
    return str(code)
