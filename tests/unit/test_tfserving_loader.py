"""The TF Serving loader against the recording TF Serving of tests/fakes.py: what it sends, when it waits,
how it repairs. No gRPC, so these run without the tensorflow extra."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.domain.errors import PermanentError, ReloadUnconfirmedError, TemporaryError
from agent.domain.locations import LocalLocation
from agent.domain.routing import ModelSet, ModelSource
from agent.domain.settings import ReloadingSettings
from agent.domain.tfserving import ModelEntry, Servable, VersionState
from agent.engine.scheduler import Scheduler
from agent.engine.tfserving import TFServingLoader
from agent.metrics import Metrics
from tests.fakes import RecordingTFServing, SteppingClock
from tests.support import wait_until

MODELS = ModelSet(fixed=(ModelSource("a", LocalLocation(Path("/a"))), ModelSource("b", LocalLocation(Path("/b")))))


SCHEDULERS: list[Scheduler] = []


@pytest.fixture(autouse=True)
def _stop_schedulers():
    yield
    while SCHEDULERS:
        SCHEDULERS.pop().stop()


def loader_for(tfserving: RecordingTFServing, clock=None, **settings) -> TFServingLoader:
    options = {"tfserving_load_timeout": 5.0, **settings}
    scheduler = Scheduler(clock)
    scheduler.start()
    SCHEDULERS.append(scheduler)
    return TFServingLoader(tfserving, MODELS, "/tf/models/", ReloadingSettings(**options), scheduler, Metrics())


def test_a_load_sends_the_complete_config_and_returns_once_available():
    # GIVEN model a version 1 loaded (TF Serving version 100)
    tfserving = RecordingTFServing()
    loader = loader_for(tfserving)
    loader.load("a", 1, Path("/store/a/100"))
    # WHEN model b version 3 loads as TF Serving version 200
    servable = loader.load("b", 3, Path("/store/b/200"))
    # THEN the config sent names both models, and the servable maps version 3 to 200 and its signature
    assert tfserving.configs[-1] == {"a": (100,), "b": (200,)}
    assert servable == Servable("b", 3, 200, "serving_default", {"x": 1})


def test_the_base_path_is_the_model_folder_as_tf_serving_sees_it():
    tfserving = RecordingTFServing()
    loader_for(tfserving).load("a", 1, Path("/store/a/100"))
    assert tfserving.sent[-1] == (ModelEntry("a", "/tf/models/a", (100,)),)


def test_an_update_in_place_serves_the_old_copy_until_the_new_one_is_available_then_drops_it():
    # GIVEN version 1 served as TF Serving version 100
    tfserving = RecordingTFServing()
    loader = loader_for(tfserving)
    old = loader.load("a", 1, Path("/store/a/100"))
    # WHEN its new content loads as 101, then the old copy is unloaded (as the reconciler does after the swap)
    loader.load("a", 1, Path("/store/a/101"))
    assert tfserving.configs[-1] == {"a": (100, 101)}
    loader.unload("a", 1, old)
    # THEN TF Serving was told to keep only 101, and 100 ended
    assert tfserving.configs[-1] == {"a": (101,)}
    assert tfserving.states["a"][100].state == "END"


def test_a_version_tf_serving_cannot_load_fails_and_leaves_the_config():
    # GIVEN a version TF Serving ends with an error
    tfserving = RecordingTFServing()
    tfserving.broken.add(100)
    loader = loader_for(tfserving)
    # WHEN it is loaded THEN it fails permanently with TF Serving's error, and the config no longer names it
    with pytest.raises(PermanentError, match="bad graph"):
        loader.load("a", 1, Path("/store/a/100"))
    assert tfserving.configs[-1] == {}


def test_a_version_that_never_becomes_available_times_out_and_leaves_the_config():
    tfserving = RecordingTFServing()
    tfserving.stuck.add(100)
    loader = loader_for(tfserving, clock=SteppingClock(step=10.0))
    with pytest.raises(TemporaryError, match=r"not loaded after 5\.0 s"):
        loader.load("a", 1, Path("/store/a/100"))
    assert tfserving.configs[-1] == {}


def test_a_reload_that_hits_its_deadline_is_judged_by_the_version_states():
    # GIVEN TF Serving applies the config but the call hits its deadline (it waits for new models)
    tfserving = RecordingTFServing()
    tfserving.fail_next_reload(ReloadUnconfirmedError("deadline"), applied=True)
    # WHEN a version loads THEN it is served all the same
    assert loader_for(tfserving).load("a", 1, Path("/store/a/100")).internal_version == 100


def test_a_config_tf_serving_did_not_take_fails_the_load_and_the_watchdog_sends_it_again():
    # GIVEN version 1 of a loaded, and TF Serving unreachable for the next call
    tfserving = RecordingTFServing()
    loader = loader_for(tfserving)
    loader.load("a", 1, Path("/store/a/100"))
    tfserving.fail_next_reload(TemporaryError("UNAVAILABLE"))
    # WHEN b loads THEN the load fails temporarily and b is no longer desired
    with pytest.raises(TemporaryError):
        loader.load("b", 1, Path("/store/b/200"))
    # AND the watchdog's next check sends the config that was missed
    assert loader.check() is True
    assert tfserving.configs[-1] == {"a": (100,)}
    assert loader.check() is False


def test_the_watchdog_sends_the_config_again_after_tf_serving_restarts():
    # GIVEN two models loaded
    tfserving = RecordingTFServing()
    loader = loader_for(tfserving)
    loader.load("a", 1, Path("/store/a/100"))
    loader.load("b", 2, Path("/store/b/200"))
    assert loader.check() is False
    sent = len(tfserving.configs)
    # WHEN TF Serving restarts, empty
    tfserving.restart()
    # THEN the check sends the complete config again, once
    assert loader.check() is True
    assert tfserving.configs[sent:] == [{"a": (100,), "b": (200,)}]
    assert loader.check() is False


def test_config_calls_from_parallel_loads_never_overlap_and_each_is_complete():
    # GIVEN model a loaded
    tfserving = RecordingTFServing()
    loader = loader_for(tfserving)
    loader.load("a", 1, Path("/store/a/100"))
    # WHEN twenty versions of b load from parallel threads (as workers of different models would call)
    threads = [
        threading.Thread(target=loader.load, args=("b", version, Path(f"/store/b/{200 + version}")))
        for version in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN no two config calls overlapped, every config kept a, and the last one holds all of b
    assert tfserving.overlapping_calls == 0
    assert all(config.get("a") == (100,) for config in tfserving.configs[1:])
    assert tfserving.configs[-1]["b"] == tuple(range(200, 220))


def test_stopping_ends_a_load_that_waits_for_tf_serving():
    # GIVEN a version TF Serving keeps LOADING, being loaded on a worker thread
    tfserving = RecordingTFServing()
    tfserving.stuck.add(100)
    loader = loader_for(tfserving, tfserving_load_timeout=3600.0)
    errors: list[Exception] = []

    def load() -> None:
        try:
            loader.load("a", 1, Path("/store/a/100"))
        except TemporaryError as error:
            errors.append(error)

    worker = threading.Thread(target=load)
    worker.start()
    wait_until(lambda: tfserving.configs, timeout=5, what="the config sent")
    # WHEN the loader stops THEN the load gives up at once, and the version leaves the config
    loader.stop()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert errors and "stopping" in str(errors[0])
    assert tfserving.configs[-1] == {}


def test_a_call_that_adds_a_model_waits_as_long_as_a_load_may_take():
    # GIVEN TF Serving answers a reload that adds a model only once that model loaded (ServerCore::ReloadConfig)
    tfserving = RecordingTFServing()
    loader = loader_for(tfserving, tfserving_rpc_timeout=7.0, tfserving_load_timeout=300.0)
    # WHEN model a loads for the first time, then a second version of it
    loader.load("a", 1, Path("/store/a/100"))
    loader.load("a", 2, Path("/store/a/101"))
    # THEN the first call's deadline covers the load timeout; the second, which adds no model, has the RPC's
    assert tfserving.timeouts == [307.0, 7.0]


def test_waiting_for_a_version_rides_out_a_status_call_that_fails_for_a_moment():
    # GIVEN TF Serving answers the first status read with UNAVAILABLE (busy, or restarting)
    tfserving = RecordingTFServing()
    tfserving.fail_next_status(TemporaryError("UNAVAILABLE"))
    # WHEN a version loads THEN the load waits on and succeeds
    assert loader_for(tfserving).load("a", 1, Path("/store/a/100")).internal_version == 100
    assert tfserving.status_failures_left == 0


def test_a_folder_stays_in_use_until_tf_serving_reports_its_version_unloaded():
    # GIVEN version 100 served, then replaced, and TF Serving slow to unload it (still AVAILABLE)
    tfserving = RecordingTFServing()
    loader = loader_for(tfserving, clock=SteppingClock(step=10.0))
    old = loader.load("a", 1, Path("/store/a/100"))
    loader.load("a", 1, Path("/store/a/101"))
    tfserving.ignores_configs = True
    # WHEN it is unloaded and TF Serving does not confirm within the load timeout
    loader.unload("a", 1, old)
    # THEN its folder is still in use (the store keeps it); the new one too; others are not
    assert loader.in_use(Path("/store/a/100")) and loader.in_use(Path("/store/a/101"))
    assert not loader.in_use(Path("/store/a/99")) and not loader.in_use(Path("/store/a/.partial-1"))
    # WHEN TF Serving reports it unloaded THEN the watchdog's check lets it go
    tfserving.ignores_configs = False
    tfserving.states["a"][100] = VersionState("END")
    assert loader.check() is False
    assert not loader.in_use(Path("/store/a/100"))


def test_the_watchdog_sends_the_config_again_when_tf_serving_serves_a_version_the_config_omits():
    # GIVEN version 100 replaced by 101, and 100 unloaded
    tfserving = RecordingTFServing()
    loader = loader_for(tfserving)
    old = loader.load("a", 1, Path("/store/a/100"))
    loader.load("a", 1, Path("/store/a/101"))
    loader.unload("a", 1, old)
    assert loader.check() is False
    sent = len(tfserving.configs)
    # WHEN a late config call (one that TF Serving kept applying after the agent gave up) puts 100 back
    tfserving.apply((ModelEntry("a", "/tf/models/a", (100, 101)),))
    tfserving.model_status("a")
    # THEN the check sends the whole config again, and TF Serving serves 101 only
    assert loader.check() is True
    assert tfserving.configs[sent + 1 :] == [{"a": (101,)}]
    assert {v for v, s in tfserving.model_status("a").items() if s.state == "AVAILABLE"} == {101}


def test_the_watchdog_looks_again_under_the_lock_before_it_sends():
    # GIVEN version 100 served, whose unload happens while the watchdog reads TF Serving's states
    tfserving = RecordingTFServing()
    loader = loader_for(tfserving)
    old = loader.load("a", 1, Path("/store/a/100"))
    loader.load("a", 1, Path("/store/a/101"))
    # another worker unloads it between the watchdog's snapshot and its read
    tfserving.before_next_status(lambda: loader.unload("a", 1, old))
    sent = len(tfserving.configs)
    # WHEN the watchdog checks THEN it sees that 100 went on purpose, and sends nothing
    assert loader.check() is False
    assert len(tfserving.configs) == sent + 1  # the unload's own config only
