"""The serving benchmark's own logic: where it pins processes, whose CPU it counts, how a skipped row reads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.serving import Placement, Row, Run, table, tree_cpu_seconds


@pytest.mark.parametrize(
    ("processes", "pin", "cpus", "servers", "wrk"),
    [
        pytest.param(1, True, [0, 1], ("taskset", "-c", "0"), ("taskset", "-c", "1"), id="one-process-two-cpus"),
        pytest.param(2, True, [0, 1, 2, 3], ("taskset", "-c", "0,1"), ("taskset", "-c", "2"), id="two-on-four"),
        pytest.param(2, True, [0, 1], (), (), id="two-on-two-unpinned"),
        pytest.param(1, False, [0, 1], (), (), id="no-pin"),
    ],
)
def test_placement_leaves_wrk_a_cpu_of_its_own_or_pins_nothing(
    monkeypatch: pytest.MonkeyPatch,
    processes: int,
    pin: bool,
    cpus: list[int],
    servers: tuple[str, ...],
    wrk: tuple[str, ...],
) -> None:
    # GIVEN a machine with these CPUs
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(cpus))
    # WHEN the benchmark places N serving processes
    placement = Placement.for_processes(processes, pin)
    # THEN the servers share the first N CPUs and wrk has the next one, or nothing is pinned
    assert (placement.servers, placement.wrk) == (servers, wrk)


def test_tree_cpu_seconds_counts_the_children_of_the_process() -> None:
    # GIVEN a parent that waits on a child burning CPU (as uvicorn's supervisor waits on its workers)
    # (the child then waits for its stdin to close: an exited child's time would no longer be in the tree)
    burn = (
        "import sys, time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"
        "print('done', flush=True)\nsys.stdin.read()"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdin is not None
        # WHEN the child has burnt its CPU and still lives
        assert parent.stdout.readline().strip() == "done"
        total = tree_cpu_seconds(parent.pid)
    finally:
        parent.communicate(timeout=30)
    # THEN the tree's CPU time holds the child's, not the idle parent's alone
    assert total >= 0.3


def test_a_refused_row_says_so_and_keeps_the_bare_figure() -> None:
    # GIVEN a row whose reloader spec was refused (processes_per_replica above 1 before issue 11)
    bare = [Run(1000.0, 2.0, 150.0), Run(1200.0, 1.8, 140.0)]
    row = Row("trivial", 2, Placement(), bare, [], skipped="`reloader serve` refused `processes_per_replica: 2`")
    # WHEN the table is printed
    text = table([row])
    # THEN its row names the process count, the bare app's median and why ours is missing
    last = text.splitlines()[-1]
    assert last.startswith("| trivial (a small dict) | 2 | 1,100 | skipped: `reloader serve` refused")
