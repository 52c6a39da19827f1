"""The pure rules of `processes_per_replica` (agent/domain/processes.py)."""

from __future__ import annotations

import pytest

from agent.domain.processes import ProcessView, thread_limits, usable_cpus, version_in_process, with_processes

VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@pytest.mark.parametrize(
    ("environ", "cpus", "processes", "expected"),
    [
        pytest.param({}, 16, 4, dict.fromkeys(VARIABLES, "4"), id="a-share-of-the-cores-each"),
        pytest.param({}, 2, 2, dict.fromkeys(VARIABLES, "1"), id="one-core-each"),
        pytest.param({}, 2, 3, dict.fromkeys(VARIABLES, "1"), id="never-below-one"),
        pytest.param({}, 7, 2, dict.fromkeys(VARIABLES, "3"), id="rounded-down"),
        pytest.param(
            {"OMP_NUM_THREADS": "8"},
            16,
            4,
            {name: "4" for name in VARIABLES if name != "OMP_NUM_THREADS"},
            id="what-the-user-set-is-kept",
        ),
    ],
)
def test_thread_limits(environ, cpus, processes, expected):
    assert thread_limits(environ, cpus, processes) == expected


def view(state="serving", error=None, loaded=None, loading=()):
    return ProcessView(1, 100, state, error, loaded or {}, frozenset(loading))


@pytest.mark.parametrize(
    ("process", "path", "expected"),
    [
        pytest.param(view(loaded={("m", 1): ("/s/m/1-a", None)}), "/s/m/1-a", "ready", id="ready"),
        pytest.param(view(loading=[("m", 1)]), "/s/m/1-a", "loading", id="loading"),
        pytest.param(
            view(loaded={("m", 1): ("/s/m/1-a", None)}), "/s/m/1-b", "loading", id="still-on-the-previous-content"
        ),
        pytest.param(view(loaded={("m", 1): ("/s/m/1-a", "load_model raised")}), "/s/m/1-a", "failed", id="failed"),
        pytest.param(view(), "/s/m/1-a", "not loaded", id="serving-without-it"),
        pytest.param(view(state="starting"), "/s/m/1-a", "starting", id="starting"),
        pytest.param(view(state="down", error="was killed by SIGKILL"), "/s/m/1-a", "down", id="down"),
        pytest.param(view(state="starting", error="exited with status 3"), "/s/m/1-a", "starting", id="restarting"),
    ],
)
def test_a_version_in_a_process(process, path, expected):
    assert version_in_process(process, "m", 1, path)["state"] == expected


def test_the_models_view_gets_each_process_per_version():
    snapshot = {"m": {"latest": 2, "versions": {"1": {"state": "ready"}, "2": {"state": "loading"}}}}
    processes = [
        ProcessView(1, 10, "serving", None, {("m", 1): ("/s/m/1-a", None)}, frozenset({("m", 2)})),
        ProcessView(2, None, "down", "exited with status 1", {}, frozenset()),
    ]
    view = with_processes(snapshot, processes, {("m", 1): "/s/m/1-a", ("m", 2): "/s/m/2-b"})
    assert view["m"]["latest"] == 2
    assert view["m"]["versions"]["1"] == {
        "state": "ready",
        "processes": {
            "1": {"state": "ready", "error": None},
            "2": {"state": "down", "error": "exited with status 1"},
        },
    }
    assert view["m"]["versions"]["2"]["processes"]["1"] == {"state": "loading", "error": None}
    assert snapshot["m"]["versions"]["1"] == {"state": "ready"}  # the agent's view is not changed


@pytest.mark.parametrize(
    ("affinity", "cpu_max", "expected"),
    [
        pytest.param(16, None, 16, id="no-cgroup"),
        pytest.param(16, "max 100000\n", 16, id="no-quota"),
        pytest.param(16, "200000 100000\n", 2, id="a-limit-of-2-cpus"),
        pytest.param(16, "150000 100000", 2, id="a-limit-of-1.5-rounds-up"),
        pytest.param(2, "800000 100000", 2, id="never-above-the-affinity"),
        pytest.param(4, "10000 100000", 1, id="never-below-one"),
        pytest.param(4, "garbage", 4, id="unreadable"),
    ],
)
def test_usable_cpus(affinity, cpu_max, expected):
    assert usable_cpus(affinity, cpu_max) == expected
