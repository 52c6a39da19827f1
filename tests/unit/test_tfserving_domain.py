"""TF Serving's config and the meaning of its answers: tables over the pure half of the TensorFlow handler."""

from __future__ import annotations

import pytest

from agent.boundaries.store import InternalVersions
from agent.domain.errors import PermanentError
from agent.domain.tfserving import (
    ModelEntry,
    Send,
    VersionState,
    choose_signature,
    config_drift,
    config_to_send,
    is_unloaded,
    load_progress,
    lost_versions,
    model_config,
)


def test_the_config_lists_every_model_with_versions_in_a_stable_order():
    desired = {"b": {3, 1}, "a": {7}, "empty": set()}
    assert model_config(desired, lambda name: f"/models/{name}") == (
        ModelEntry("a", "/models/a", (7,)),
        ModelEntry("b", "/models/b", (1, 3)),
    )


def test_no_models_is_an_empty_config():
    assert model_config({}, str) == ()


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        pytest.param({}, ("pending", None), id="not-seen-yet"),
        pytest.param({5: VersionState("START")}, ("pending", None), id="start"),
        pytest.param({5: VersionState("LOADING")}, ("pending", None), id="loading"),
        pytest.param({5: VersionState("UNKNOWN")}, ("pending", None), id="unknown"),
        pytest.param({5: VersionState("AVAILABLE")}, ("available", None), id="available"),
        pytest.param({5: VersionState("END", "bad graph")}, ("failed", "bad graph"), id="end-with-error"),
        pytest.param({4: VersionState("AVAILABLE")}, ("pending", None), id="another-version-available"),
    ],
)
def test_load_progress(states, expected):
    assert load_progress(states, 5) == expected


@pytest.mark.parametrize("state", ["END", "UNLOADING"])
def test_a_version_ended_without_error_before_available_failed(state):
    progress, error = load_progress({5: VersionState(state)}, 5)
    assert progress == "failed" and error is not None and state in error


@pytest.mark.parametrize(
    ("states", "unloaded"),
    [
        pytest.param({}, True, id="unknown-to-tf-serving"),
        pytest.param({5: VersionState("END")}, True, id="end"),
        pytest.param({5: VersionState("UNLOADING")}, False, id="unloading"),
        pytest.param({5: VersionState("AVAILABLE")}, False, id="available"),
    ],
)
def test_is_unloaded(states, unloaded):
    assert is_unloaded(states, 5) is unloaded


@pytest.mark.parametrize(
    ("states", "lost"),
    [
        pytest.param({1: VersionState("AVAILABLE"), 2: VersionState("AVAILABLE")}, [], id="all-served"),
        pytest.param({}, [1, 2], id="restarted-empty"),
        pytest.param({1: VersionState("LOADING"), 2: VersionState("START")}, [], id="reloading-after-resend"),
        pytest.param({1: VersionState("AVAILABLE"), 2: VersionState("END")}, [2], id="one-unloaded"),
        pytest.param({1: VersionState("AVAILABLE"), 2: VersionState("UNLOADING")}, [2], id="one-unloading"),
    ],
)
def test_lost_versions(states, lost):
    assert lost_versions({1, 2}, states) == lost


@pytest.mark.parametrize(
    ("keys", "configured", "chosen"),
    [
        pytest.param(["serving_default", "__saved_model_init_op"], None, "serving_default", id="tf2-default"),
        pytest.param(["classify"], None, "classify", id="the-only-one"),
        pytest.param(["classify", "serving_default"], None, "serving_default", id="default-among-several"),
        pytest.param(["classify", "predict"], None, "predict", id="cortex-predict-among-several"),
        pytest.param(["classify", "serving_default"], "classify", "classify", id="configured"),
    ],
)
def test_choose_signature(keys, configured, chosen):
    assert choose_signature({key: {} for key in keys}, configured, "m") == chosen


@pytest.mark.parametrize(
    ("keys", "configured", "message"),
    [
        pytest.param(["serving_default"], "missing", "'missing' is not in the SavedModel", id="configured-absent"),
        pytest.param(["a", "b"], None, "set handler.models.signature_key", id="several-no-default"),
        pytest.param(["__saved_model_init_op"], None, "0 signatures", id="none-usable"),
    ],
)
def test_choose_signature_refuses(keys, configured, message):
    with pytest.raises(PermanentError, match="model m") as raised:
        choose_signature({key: {} for key in keys}, configured, "model m")
    assert message in str(raised.value)


def test_internal_versions_increase_and_start_above_the_clock_in_milliseconds():
    # GIVEN a clock that stands still, then goes back
    times = iter([1000.0, 1000.0, 999.0])
    versions = InternalVersions(clock=lambda: next(times))
    # THEN numbers start at the clock in milliseconds and only increase
    assert [versions.next(), versions.next(), versions.next()] == [1_000_000, 1_000_001, 1_000_002]


def test_internal_versions_name_store_folders():
    versions = InternalVersions(clock=lambda: 2.0)
    assert versions.folder_name("m", 3, "abc") == "2000"
    assert versions.folder_name("m", 3, "abc") == "2001"


A = ModelEntry("a", "/m/a", (1,))
B = ModelEntry("b", "/m/b", (7,))
A12 = ModelEntry("a", "/m/a", (1, 2))


@pytest.mark.parametrize(
    ("entries", "previous", "force", "expected"),
    [
        pytest.param((A,), (A,), False, None, id="tf-serving-has-it"),
        pytest.param((A,), (A,), True, Send((A,), 307.0), id="forced-resend-waits-for-loads"),
        pytest.param((A, B), (A,), False, Send((A, B), 307.0), id="adds-a-model-waits-for-its-load"),
        pytest.param((A12,), (A,), False, Send((A12,), 7.0), id="new-version-of-a-known-model"),
        pytest.param((), (A,), False, Send((), 7.0), id="drops-a-model"),
        pytest.param((A,), None, False, Send((A,), 307.0), id="unknown-what-it-has"),
    ],
)
def test_config_to_send(entries, previous, force, expected):
    assert config_to_send(entries, previous, force, rpc_timeout=7.0, load_timeout=300.0) == expected


@pytest.mark.parametrize(
    ("desired", "confirmed", "leaving", "reported", "expected"),
    [
        pytest.param({"a": [1]}, {"a": [1]}, [], {"a": {1: VersionState("AVAILABLE")}}, None, id="agrees"),
        pytest.param({"a": [1]}, {"a": [1]}, [], {"a": {}}, "it lost versions [1] of 'a'", id="restarted"),
        pytest.param(
            {"a": [2]},
            {"a": [2]},
            [],
            {"a": {1: VersionState("AVAILABLE"), 2: VersionState("AVAILABLE")}},
            "it serves versions [1] of 'a' that the config omits",
            id="late-call",
        ),
        pytest.param(
            {"a": [2]},
            {"a": [2]},
            [("a", 1)],
            {"a": {1: VersionState("UNLOADING"), 2: VersionState("AVAILABLE")}},
            None,
            id="just-dropped",
        ),
    ],
)
def test_config_drift(desired, confirmed, leaving, reported, expected):
    assert config_drift(desired, confirmed, leaving, reported) == expected
