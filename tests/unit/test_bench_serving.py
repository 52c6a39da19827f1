"""The serving benchmark's own logic: where it pins processes, whose CPU it counts, in which order it loads
the servers, and the table it prints (the control's columns, a skipped row)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter

import pytest

from bench.serving import Placement, Row, Run, counts, round_order, table, tree_cpu_seconds


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


def runs(*requests_per_second: float) -> list[Run]:
    """Runs at these rates, their CPU per request and p50 derived from the rate (distinct per run)."""
    return [Run(rate, 1000.0 / rate, 1e6 / rate) for rate in requests_per_second]


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_the_header_names_the_control_and_the_pooled_headline() -> None:
    # GIVEN any row  WHEN the table is printed
    header, separator, _ = table([Row("trivial", 1, 1, runs(100.0), runs(100.0), runs(100.0))]).splitlines()
    # THEN the header has the connections, the control's ratio, ours against each bare app and pooled
    assert cells(header) == [
        "handler", "processes", "connections", "req/s, bare / bare (2nd) / ours", "control: bare (2nd) / bare",
        "ours / bare", "ours / bare (2nd)", "**ours / the bare apps**", "CPU per request, bare / bare (2nd) / ours",
        "p50 latency, bare / bare (2nd) / ours",
    ]  # fmt: skip
    assert separator == "|" + "---|" * 10


def test_a_row_with_the_control_gives_each_ratio_per_round_and_the_pooled_median() -> None:
    # GIVEN three rounds of the bare app, its control and ours at 16 connections
    row = Row(
        "forest", 1, 16, bare=runs(200.0, 400.0, 100.0), control=runs(100.0, 400.0, 200.0),
        ours=runs(200.0, 200.0, 200.0),
    )  # fmt: skip
    # WHEN the table is printed
    line = table([row]).splitlines()[-1]
    # THEN every ratio is the median of the per-round ratios with their range, not a ratio of medians:
    # control/bare 0.5, 1, 2; ours/bare 1, 0.5, 2; ours/control 2, 0.5, 1; pooled: 0.5, 0.5, 1, 1, 2, 2
    assert cells(line) == [
        "CPU-bound (60-tree forest)", "1", "16", "200 / 200 / 200", "1.00x (0.50-2.00)", "1.00x (0.50-2.00)",
        "1.00x (0.50-2.00)", "**1.00x (0.50-2.00)**", "5,000 / 5,000 / 5,000 us", "5.00 / 5.00 / 5.00 ms",
    ]  # fmt: skip


def test_the_pooled_headline_is_the_median_over_both_bare_apps() -> None:
    # GIVEN ours at 0.9x of the bare app and 0.8x of a slower control in every round but one
    row = Row(
        "trivial", 2, 1, bare=runs(1000.0, 1000.0, 1000.0), control=runs(1125.0, 1125.0, 900.0),
        ours=runs(900.0, 900.0, 900.0),
    )  # fmt: skip
    # WHEN the table is printed
    line = cells(table([row]).splitlines()[-1])
    # THEN each column has its own median, and the headline the median of all six ratios
    # (ours/bare 0.9, 0.9, 0.9; ours/control 0.8, 0.8, 1.0)
    assert line[4:8] == ["1.12x (0.90-1.12)", "0.90x (0.90-0.90)", "0.80x (0.80-1.00)", "**0.90x (0.80-1.00)**"]


def test_without_the_control_its_columns_read_a_dash() -> None:
    # GIVEN a row measured with --no-control
    row = Row("trivial", 1, 1, bare=runs(1000.0, 1200.0), control=[], ours=runs(900.0, 1200.0))
    # WHEN the table is printed
    line = cells(table([row]).splitlines()[-1])
    # THEN the control's figures are "-", and the headline is ours against the one bare app
    assert line[3:] == [
        "1,100 / - / 1,050", "-", "0.95x (0.90-1.00)", "-", "**0.95x (0.90-1.00)**", "917 / - / 972 us",
        "0.92 / - / 0.97 ms",
    ]  # fmt: skip


def test_a_refused_row_says_so_and_keeps_the_bare_figures() -> None:
    # GIVEN a row whose reloader spec was refused (processes_per_replica above 1 before issue 11)
    row = Row(
        "trivial", 2, 16, bare=runs(1000.0, 1200.0), control=runs(1100.0, 1100.0), ours=[],
        skipped="`reloader serve` refused `processes_per_replica: 2`",
    )  # fmt: skip
    # WHEN the table is printed
    line = cells(table([row]).splitlines()[-1])
    # THEN it names the process and connection counts, keeps both bare apps' figures and the control's
    # ratio, and says why ours is missing where ours' ratios would be
    assert line == [
        "trivial (a small dict)", "2", "16", "1,100 / 1,100 / -", "1.01x (0.92-1.10)",
        "skipped: `reloader serve` refused `processes_per_replica: 2`", "", "", "917 / 909 / - us",
        "0.92 / 0.91 / - ms",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("names", "orders"),
    [
        pytest.param(
            ["bare", "control", "ours"],
            [
                ["bare", "control", "ours"], ["control", "ours", "bare"], ["ours", "bare", "control"],
                ["ours", "control", "bare"], ["bare", "ours", "control"], ["control", "bare", "ours"],
            ],
            id="three-servers-all-six-orders",
        ),
        pytest.param(
            ["bare", "ours"], [["bare", "ours"], ["ours", "bare"], ["ours", "bare"], ["bare", "ours"]], id="two"
        ),
    ],
)  # fmt: skip
def test_rounds_rotate_the_order_so_each_server_is_first_equally_often(
    names: list[str], orders: list[list[str]]
) -> None:
    # GIVEN the servers of a row  WHEN 2 * N rounds are ordered
    given = [round_order(names, number) for number in range(2 * len(names))]
    # THEN they are these orders: each server first (and in every place) equally often,
    # and each server right before each other one equally often
    assert given == orders
    for name in names:
        assert {order.index(name) for order in given[: len(names)]} == set(range(len(names)))
    follows = Counter((order[i], order[i + 1]) for order in given for i in range(len(names) - 1))
    assert len(set(follows.values())) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1,16", [1, 16], id="list"),
        pytest.param("4", [4], id="one"),
    ],
)
def test_counts_reads_a_comma_separated_list(text: str, expected: list[int]) -> None:
    assert counts(argparse.ArgumentParser(), "--connections", text) == expected


@pytest.mark.parametrize("text", ["0,16", "1,,16", "sixteen", ""])
def test_counts_refuses_what_is_not_a_list_of_positive_counts_naming_it(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN a bad list is given THEN the parser exits with its usage error, naming the option and the text
    with pytest.raises(SystemExit):
        counts(argparse.ArgumentParser(), "--connections", text)
    assert f"--connections: expected comma-separated counts of 1 or more (such as 1,16), found {text!r}" in (
        capsys.readouterr().err
    )
