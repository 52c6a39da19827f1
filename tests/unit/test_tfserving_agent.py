"""The agent in-process with the TF Serving loader, on local model folders and the recording TF Serving of
tests/fakes.py: what an agent restart sends, and which folders survive it."""

from __future__ import annotations

import shutil
from pathlib import Path

from agent.domain.errors import TemporaryError
from agent.domain.locations import LocalLocation
from agent.domain.routing import ModelSet, ModelSource
from agent.domain.settings import ReloadingSettings
from agent.engine.agent import Agent
from agent.engine.tfserving import TFServingLoader
from tests.fakes import RecordingTFServing, build_agent
from tests.support import wait_until


def put_version(models: Path, model: str, version: int, content: str) -> None:
    folder = models / model / str(version)
    (folder / "variables").mkdir(parents=True, exist_ok=True)
    (folder / "saved_model.pb").write_text(content)  # a complete SavedModel as the structural check sees it
    (folder / "variables" / "variables.index").write_text("index")
    (folder / "variables" / "variables.data-00000-of-00001").write_text("data")


def make_agent(tmp_path: Path, tfserving: RecordingTFServing, settle: float = 0) -> tuple[Agent, TFServingLoader]:
    """An agent as `reloader agent` builds it for TF Serving (the same runtime factory), on the recording fake."""
    models = tmp_path / "models"
    model_set = ModelSet(
        fixed=tuple(ModelSource(name, LocalLocation(models / name)) for name in ("a", "b")), single=False
    )
    settings = ReloadingSettings(interval=3600, settle=settle, tfserving_load_timeout=5.0, retry_backoff=0.05)
    agent, runtime = build_agent(
        model_set, settings, tmp_path / "store", handler_type="tensorflow", tfserving=tfserving
    )
    assert isinstance(runtime.loader, TFServingLoader)
    agent.start()  # the runtime's start is the loader's: the CLI starts both
    return agent, runtime.loader


def run_until_ready(agent: Agent) -> None:
    assert agent.wait_ready(10)


def folders(tmp_path: Path) -> set[str]:
    store = tmp_path / "store"
    return {f"{m.name}/{v.name}" for m in store.iterdir() for v in m.iterdir()} if store.is_dir() else set()


def served_then_stopped(tmp_path: Path) -> RecordingTFServing:
    """Models a and b, version 1 each, served through TF Serving by an agent that then stopped."""
    put_version(tmp_path / "models", "a", 1, "a1")
    put_version(tmp_path / "models", "b", 1, "b1")
    tfserving = RecordingTFServing()
    first, _ = make_agent(tmp_path, tfserving)
    run_until_ready(first)
    first.stop()
    return tfserving


def test_an_agent_restart_with_s3_unchanged_sends_one_config_equal_to_what_tf_serving_serves(tmp_path):
    # GIVEN models a and b served through TF Serving by an agent, which then stops (TF Serving keeps running)
    tfserving = served_then_stopped(tmp_path)
    served = tfserving.configs[-1]
    assert sorted(served) == ["a", "b"]
    before = folders(tmp_path)
    sent = len(tfserving.configs)

    # WHEN the agent starts again on the same folder
    second, _ = make_agent(tmp_path, tfserving)
    try:
        run_until_ready(second)
        wait_until(lambda: second.registry.loaded("a") and second.registry.loaded("b"), what="both taken over")
        # THEN it sent one config, equal to the one TF Serving serves: no version left TF Serving's config
        assert tfserving.configs[sent:] == [served]
        # AND it took over the folders (nothing downloaded again), and serves both models from them
        assert folders(tmp_path) == before
        assert {s.internal_version for s in (second.registry.get("a"), second.registry.get("b"))} == {
            v for versions in served.values() for v in versions
        }
        assert all(state.state == "AVAILABLE" for states in tfserving.states.values() for state in states.values())
    finally:
        second.stop()


def test_after_a_restart_the_versions_s3_no_longer_has_leave_tf_serving_and_their_folders_go(tmp_path):
    # GIVEN models a and b served, and the agent stopped
    tfserving = served_then_stopped(tmp_path)
    (b_internal,) = tfserving.configs[-1]["b"]
    # WHEN b disappears from S3 while the agent is down, and it starts again
    shutil.rmtree(tmp_path / "models" / "b" / "1")
    second, loader = make_agent(tmp_path, tfserving)
    try:
        run_until_ready(second)
        # THEN the first config still held b (nothing left before the scan decided), the last one drops it
        wait_until(lambda: "b" not in tfserving.configs[-1], what="the unclaimed version dropped")
        assert "b" in tfserving.configs[-2]
        # AND b's folder goes once TF Serving reports it unloaded
        assert loader.check() is False
        assert folders(tmp_path) == {f"a/{tfserving.configs[-1]['a'][0]}"}
        assert tfserving.states["b"][b_internal].state == "END"
    finally:
        second.stop()


def test_a_load_tf_serving_cannot_take_for_now_keeps_its_download_for_the_retry(tmp_path):
    # GIVEN TF Serving unreachable for the first config call
    put_version(tmp_path / "models", "a", 1, "a1")
    tfserving = RecordingTFServing()
    tfserving.fail_next_reload(TemporaryError("reloading TF Serving's config (1 model(s)): UNAVAILABLE: down"))
    agent, _ = make_agent(tmp_path, tfserving)
    try:
        run_until_ready(agent)
        # THEN the version failed for now, says why in TF Serving's words, and its folder stays
        status = agent.index.snapshot()["a"]["versions"]["1"]
        assert status["state"] == "failed" and "UNAVAILABLE" in status["error"]
        assert "load_model raised" not in status["error"]
        kept = folders(tmp_path)
        assert len(kept) == 1
        # WHEN it is retried (after its backoff) THEN it loads from that same folder, downloaded once
        wait_until(lambda: agent.registry.loaded("a"), timeout=10, what="the retry")
        assert agent.registry.get("a").internal_version == int(next(iter(kept)).split("/")[1])
        assert folders(tmp_path) == kept
    finally:
        agent.stop()


def test_versions_uploaded_just_before_a_restart_are_kept_through_their_settle_window(tmp_path):
    # GIVEN a version uploaded moments ago (so each run waits its settle window before loading it), served
    put_version(tmp_path / "models", "a", 1, "a1")
    tfserving = RecordingTFServing()
    first, _ = make_agent(tmp_path, tfserving, settle=0.3)
    wait_until(lambda: first.registry.loaded("a"), timeout=10, what="version 1 loaded after its settle window")
    first.stop()
    served = tfserving.configs[-1]
    sent = len(tfserving.configs)
    # WHEN the agent restarts: its first scan sees the version for the first time, and waits to load it
    second, _ = make_agent(tmp_path, tfserving, settle=0.3)
    try:
        run_until_ready(second)
        wait_until(lambda: second.registry.loaded("a"), timeout=10, what="version 1 claimed")
        # THEN the version never left TF Serving's config: one config was sent, the one it served
        assert tfserving.configs[sent:] == [served]
    finally:
        second.stop()
