"""Runtimes: what differs between the Python handler and the TensorFlow handler, as two objects.

A runtime builds its store (folder layout), its loader, its completeness check, the client the
handler receives, what happens around the first scan (clean the store, or take over what TF
Serving serves), and its own start and stop. `build_runtime` is the one factory; `reloader serve`,
`reloader agent` and the tests all call it, so nothing above branches on the handler type.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from agent.api.model_client import ModelClient
from agent.boundaries.store import InternalVersions, ModelStore
from agent.domain.errors import SpecError
from agent.domain.routing import ModelSet
from agent.domain.savedmodel import savedmodel_check
from agent.domain.settings import ReloadingSettings
from agent.domain.versions import CompletenessCheck
from agent.engine.agent import CleanStore, Lifecycle
from agent.engine.loaders import Loader, PythonLoader
from agent.engine.registry import Lookup, Registry
from agent.engine.scheduler import Scheduler
from agent.engine.tfserving import TFServingAPI, TFServingLoader
from agent.metrics import Metrics

log = logging.getLogger(__name__)

TENSORFLOW_EXTRA = "pip install 'model-reloader[tensorflow]'"


class PythonRuntime:
    """`Handler.load_model(path)` in this process; folders `<model>/<version>-<fingerprint>`, retired
    `retire_after` seconds after they stop serving (a request may still read them)."""

    needs_load_model = True
    completeness: CompletenessCheck | None = None

    def __init__(self, registry: Registry, settings: ReloadingSettings, model_dir: Path, scheduler: Scheduler) -> None:
        self.store = ModelStore(model_dir, retire_after=settings.retire_after, later=scheduler.call_later)
        self.lifecycle: Lifecycle = CleanStore(self.store)
        self._client = ModelClient(registry)
        self.clients: dict[str, Any] = {"model_client": self._client}
        self.tfserving: Any = None  # no TF Serving to ask for signatures (/info)
        self._loader: Loader | None = None

    def serve_through(self, lookup: Lookup) -> None:
        """With caching, requests find their model through the cache, which loads on demand."""
        self._client.lookup = lookup

    def attach(self, handler: Any) -> None:
        load_model = getattr(handler, "load_model", None)
        if load_model is not None:  # an API without models needs none
            self._loader = PythonLoader(load_model)

    @property
    def loader(self) -> Loader:
        if self._loader is None:
            raise SpecError("handler.type: python: the agent needs a Handler with load_model; none was attached")
        return self._loader

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


class TFServingRuntime:
    """TF Serving serves the versions; the agent owns its config. Folders `<model>/<internal version>`
    with a record of their content, which outlive the agent: a restarted agent takes over what TF
    Serving serves (`TFServingLoader.resume`), and a folder goes only once TF Serving unloaded it."""

    needs_load_model = False

    def __init__(
        self,
        registry: Registry,
        settings: ReloadingSettings,
        model_dir: Path,
        scheduler: Scheduler,
        models: ModelSet,
        metrics: Metrics,
        tfserving: TFServingAPI | None = None,
        inferentia: bool = False,
    ) -> None:
        # A graph-only SavedModel (Inferentia) is complete once declared so: its marker, or compute.inf.
        self.completeness: CompletenessCheck | None = savedmodel_check(inferentia)
        self.store = ModelStore(model_dir, InternalVersions().folder_name, record=True, in_use=self._in_use)
        self._channel: Any = None
        if tfserving is None:
            tfserving, predictor = self._connect(settings)
        else:
            predictor = tfserving
        self.tfserving: Any = tfserving  # /info asks it for each version's signatures
        from agent.api.tensorflow_client import TensorFlowClient

        self._client = TensorFlowClient(registry, predictor)
        self.clients = {"tensorflow_client": self._client}
        base_dir = settings.tfserving_model_dir or str(model_dir.resolve())
        self.loader = TFServingLoader(tfserving, models, base_dir, settings, scheduler, metrics, store=self.store)
        self.lifecycle = self.loader

    def serve_through(self, lookup: Lookup) -> None:
        """With caching, a predict of a version TF Serving has not loaded adds it to the config first."""
        self._client.lookup = lookup

    def _connect(self, settings: ReloadingSettings) -> tuple[TFServingAPI, Any]:
        _require_tensorflow_extra()
        from agent.boundaries.tfserving import open_tfserving  # TensorFlow is imported here only

        self._channel, tfserving = open_tfserving(
            settings.tfserving_address, settings.tfserving_rpc_timeout, settings.tfserving_predict_timeout
        )
        return tfserving, tfserving

    def _in_use(self, folder: Path) -> bool:
        return self.loader.in_use(folder)  # a folder goes only once TF Serving reports it unloaded

    def attach(self, handler: Any) -> None:
        pass  # the handler calls tensorflow_client; TF Serving does the loading

    def start(self) -> None:
        self.loader.start()

    def stop(self) -> None:
        self.loader.stop()  # first: TF Serving loads being awaited give up, so the workers can stop

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()


Runtime = PythonRuntime | TFServingRuntime


def _require_tensorflow_extra() -> None:
    missing = [name for name in ("grpc", "tensorflow", "tensorflow_serving") if not importlib.util.find_spec(name)]
    if missing:
        raise SpecError(
            f"handler.type: tensorflow needs the tensorflow extra, and {', '.join(missing)} "
            f"cannot be imported: {TENSORFLOW_EXTRA}"
        )


def build_runtime(
    handler_type: str,
    registry: Registry,
    settings: ReloadingSettings,
    model_dir: Path,
    scheduler: Scheduler,
    models: ModelSet | None,
    metrics: Metrics,
    sidecar: bool = False,
    tfserving: TFServingAPI | None = None,
    inferentia: bool = False,
) -> Runtime:
    """The runtime of a handler type. `sidecar`: `reloader agent`, beside a TF Serving, with no handler;
    `inferentia`: the API declares `compute.inf` (its SavedModels may be only their graph)."""
    if handler_type != "tensorflow":
        return PythonRuntime(registry, settings, model_dir, scheduler)
    if tfserving is None:
        _require_tensorflow_extra()
    if sidecar and settings.model_dir is None:
        raise SpecError(
            "reloading.model_dir (RELOADER_MODEL_DIR): `reloader agent` writes the versions where TF Serving "
            "reads them, so it needs that folder, shared with the TF Serving container; found none (the "
            "default, a private temporary folder, is out of TF Serving's reach). Set tfserving_model_dir "
            "(RELOADER_TFSERVING_MODEL_DIR) too when TF Serving mounts it at another path"
        )
    assert models is not None, "the spec requires models for the tensorflow handler"
    return TFServingRuntime(registry, settings, model_dir, scheduler, models, metrics, tfserving, inferentia)
