"""Benchmark: requests per second of `reloader serve` against a bare Starlette app on the same server stack.

    make bench-serving              # or: .venv/bin/python -m bench.serving [--help]
    make bench-processes            # the same with 1 and 2 processes: --processes 1,2

For each work, a trivial handler (a small dict back) and a CPU-bound one (a 60-tree scikit-learn
forest predicting one row), three servers run side by side, each as its own process with uvicorn
configured alike: `reloader serve` (`threads_per_process: 4`), a bare Starlette app (a sync endpoint
through `run_in_threadpool`, anyio's thread limit set to 4; see bench/serving_app.py) and, as the
control, a second bare app identical to the first (same command, placement, stack and `--workers`).
wrk (one thread, loopback only) loads one server at a time, in interleaved rounds: the order rotates
so that each server is first equally often and follows each other one equally often, and each
measured run follows a 1 s run on the same server; a change in the host's speed so touches all alike.
Each row is measured at each of `--connections` (default 1,16: 1 gives the per-request cost without
contention, 16 is issue 12's figure). The servers share CPU 0 and wrk runs on CPU 1 (`--no-pin`:
wherever the scheduler puts them).

Why the control: in an A/A test on this project's 2-core host (2026-12-02), two identical bare apps
started and pinned alike differed by 1.05x at 1 connection but by 0.64x at 4 and 0.885x at 16: under
concurrency (4 threads of a GIL-bound forest on one CPU) the throughput of a process moves by up to
1.5x between identical processes, so one bare app cannot resolve a 5 % target. The control's ratio
`bare (2nd) / bare` is that noise floor, printed next to ours. The table gives, per row, the median
requests per second of each server, the per-round ratios (median and range) of the control and of
ours against each bare app, the headline "ours / the bare apps" (the median of ours' per-round ratios
against both bare apps, pooled; target >= 0.95), and each server's CPU time per request (every thread
of its process tree, from /proc) and p50 latency. `--no-control` skips the control (its columns read
"-"). No AWS is involved: the model is a local folder. `--stack pure` hides httptools and uvloop from
every server (uvicorn's pure-Python fallback: h11 and asyncio).

`--instructions N` (make bench-instructions) counts instructions per request instead, under
valgrind's callgrind: the bare app as it is, the bare app importing boto3 (whose urllib3 and botocore
add three process-wide warnings filters, which scikit-learn replays for every tree of a forest's
predict; `reloader serve` removes them again, see agent/boundaries/aws.py) and ours. On a shared
2-core host the wall-clock ratio of one run moves by 2x between rounds; the instruction count does
not.

`--processes 1,2` (issue 11) runs each work with 1 and with 2 processes: `reloader serve` with
`handler.processes_per_replica: N` against the bare apps under uvicorn's own `--workers N`
(spawned worker processes sharing one socket; the control too). CPU time is then that of the whole
process tree. With N processes the servers get CPUs 0..N-1 and wrk the next one, where the machine
has that many; on fewer (2 processes on 2 cores) nothing is pinned. Where `reloader serve` refuses the
spec (exit 2: a build without `processes_per_replica` above 1), its rows say so and only the bare apps
are measured.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from bench.serving_app import PAYLOAD
from tests.support import ROOT, free_port

EXIT_SPEC = 2  # `reloader serve`'s exit status for a spec it refuses (agent/cli.py)
HIDE_STANDARD = "import sys; sys.modules['uvloop'] = None; sys.modules['httptools'] = None; "
WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = '{json.dumps(PAYLOAD)}'
wrk.headers["Content-Type"] = "application/json"
"""


@dataclass(frozen=True)
class Placement:
    """Command prefixes pinning the servers and wrk (empty: placed by the scheduler).

    On 2 cores, a GIL-bound server whose threads the scheduler spreads over both ran the forest at 3.2
    or at 6.2 ms of CPU per request depending on the process, which dwarfs what is measured. With one
    process the servers share CPU 0 (one is loaded at a time) and wrk has CPU 1; with N processes the
    servers get CPUs 0..N-1 and wrk CPU N, when the machine has N + 1 CPUs.
    """

    servers: tuple[str, ...] = ()
    wrk: tuple[str, ...] = ()

    @classmethod
    def for_processes(cls, processes: int, pin: bool) -> Placement:
        cpus = sorted(os.sched_getaffinity(0))
        if not pin or len(cpus) < processes + 1 or shutil.which("taskset") is None:
            return cls()
        servers = ",".join(str(cpu) for cpu in cpus[:processes])
        return cls(("taskset", "-c", servers), ("taskset", "-c", str(cpus[processes])))

    def describe(self) -> str:
        if not self.wrk:
            return "placed by the scheduler"
        return f"servers on CPU {self.servers[-1]}, wrk on CPU {self.wrk[-1]}"


Server = tuple[subprocess.Popen[bytes], str]  # a running server and its loopback URL


@dataclass(frozen=True)
class Servers:
    """The servers of one work and process count, started alike.

    `control` is a second bare app, identical to `bare` (None with `--no-control`); `ours` is None where
    `reloader serve` refused the spec.
    """

    work: str
    processes: int
    placement: Placement
    bare: Server
    control: Server | None
    ours: Server | None
    refused: str = ""

    def measured(self) -> dict[str, Server]:
        """The servers to load, by name, in the order of round 1."""
        candidates = {"bare": self.bare, "control": self.control, "ours": self.ours}
        return {name: server for name, server in candidates.items() if server is not None}


@dataclass(frozen=True)
class Row:
    """One line of the table: every round's run of each server at one connection count (empty: not run)."""

    work: str
    processes: int
    connections: int
    bare: list[Run]
    control: list[Run]
    ours: list[Run]
    skipped: str = ""


@dataclass(frozen=True)
class Run:
    requests_per_second: float
    p50_ms: float
    cpu_us_per_request: float  # the server process's CPU time (every thread), per request answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds per row (default 10)")
    parser.add_argument("--duration", type=int, default=3, help="seconds of load per server and round (default 3)")
    parser.add_argument(
        "--connections", default="1,16",
        help="comma-separated wrk connection counts, each measured in its own rows (default 1,16: the per-request "
        "cost without contention, and under the load of issue 12)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=4, help="threads_per_process and the bare thread limit")
    parser.add_argument("--work", choices=["trivial", "forest"], action="append", help="only this work (repeatable)")
    parser.add_argument(
        "--processes", default="1",
        help="comma-separated process counts: processes_per_replica for ours, uvicorn --workers for the bare apps "
        "(default 1; make bench-processes: 1,2)",
    )  # fmt: skip
    parser.add_argument(
        "--no-control", action="store_true",
        help="skip the control (a second bare app, identical to the first): faster, but the noise floor is unknown",
    )  # fmt: skip
    parser.add_argument(
        "--stack", choices=["installed", "pure"], default="installed",
        help="installed: what the virtualenv has (uvicorn[standard]: httptools, uvloop); pure: h11 and asyncio",
    )  # fmt: skip
    parser.add_argument(
        "--instructions", type=int, default=0, metavar="N",
        help="instead of wrk: count the instructions the bare app (as it is, then importing boto3) and ours execute "
        "for N requests (4 at a time) under valgrind's callgrind, every thread included; deterministic where "
        "wall-clock figures are not (1 process; make bench-instructions)",
    )  # fmt: skip
    parser.add_argument(
        "--bare-imports-boto3", action="store_true",
        help="diagnostic: the bare apps import boto3 too, as `reloader serve` does (boto3 adds three warnings "
        "filters, which scikit-learn replays for each tree of a forest's predict and `reloader serve` removes)",
    )  # fmt: skip
    parser.add_argument(
        "--no-pin", action="store_true",
        help="let the scheduler place the servers and wrk (default: servers on CPU 0, wrk on CPU 1)",
    )  # fmt: skip
    args = parser.parse_args()
    process_counts = counts(parser, "--processes", args.processes)
    connection_counts = counts(parser, "--connections", args.connections)
    if args.stack == "pure" and max(process_counts) > 1:
        parser.error("--stack pure hides httptools and uvloop in this process only, not in spawned workers: use 1")
    if args.instructions:
        instructions_main(args)
        return
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("bench.serving: expected wrk on PATH, found none (apt-get install wrk; make bench-serving does it)")
    print(f"# serving benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')} on {machine()}")
    print(
        f"# server stack: {stack(args.stack)}; wrk -t1 -c{','.join(map(str, connection_counts))} "
        f"-d{args.duration}s, {args.rounds} rounds; control: {'none' if args.no_control else 'a second bare app'}"
    )
    print(f"# load average at the start: {load_average()}")
    if args.bare_imports_boto3:
        print("# diagnostic: the bare apps import boto3 (with its three warnings filters, which ours removes)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="reloader-bench-serving-") as tmp:
        folder = Path(tmp)
        model_dir = write_forest(folder / "models" / "forest")
        script = folder / "post.lua"
        script.write_text(WRK_SCRIPT)
        for work in args.work or ["trivial", "forest"]:
            for processes in process_counts:
                placement = Placement.for_processes(processes, pin=not args.no_pin)
                print(f"# {WORK_NAMES[work]}, {processes} process(es): {placement.describe()}", flush=True)
                servers = start_servers(
                    folder, work, processes, model_dir, args.threads, args.stack, placement,
                    control=not args.no_control, bare_imports_boto3=args.bare_imports_boto3,
                )  # fmt: skip
                try:
                    for connections in connection_counts:
                        rows.append(measure(wrk, script, servers, connections, args.rounds, args.duration))
                finally:
                    for process, _ in servers.measured().values():
                        stop(process)
    print(f"# load average at the end: {load_average()}")
    print()
    print(table(rows))


def counts(parser: argparse.ArgumentParser, option: str, text: str) -> list[int]:
    """A comma-separated list of counts of 1 or more (`1,16`), or the parser's error naming the option."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        parser.error(f"{option}: expected comma-separated counts of 1 or more (such as 1,16), found {text!r}")
    return values


TABLE_COLUMNS = (
    "handler", "processes", "connections", "req/s, bare / bare (2nd) / ours", "control: bare (2nd) / bare",
    "ours / bare", "ours / bare (2nd)", "**ours / the bare apps**", "CPU per request, bare / bare (2nd) / ours",
    "p50 latency, bare / bare (2nd) / ours",
)  # fmt: skip


def table(rows: list[Row]) -> str:
    """The markdown table of the rows: medians over the rounds, per-round ratios as "median (min-max)".

    The control's ratio (two identical bare apps) is the row's noise floor; "ours / the bare apps" is the
    median of the per-round ratios of ours against either bare app, pooled. "-": a server not measured.
    """
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for row in rows:
        servers = (row.bare, row.control, row.ours)
        against_bare, against_control = ratios(row.ours, row.bare), ratios(row.ours, row.control)
        if row.skipped:
            ours = [f"skipped: {row.skipped}", "", ""]
        else:
            ours = [spread(against_bare), spread(against_control), f"**{spread(against_bare + against_control)}**"]
        cells = [
            WORK_NAMES[row.work],
            str(row.processes),
            str(row.connections),
            " / ".join(median_of(runs, "requests_per_second", "{:,.0f}") for runs in servers),
            spread(ratios(row.control, row.bare)),
            *ours,
            " / ".join(median_of(runs, "cpu_us_per_request", "{:,.0f}") for runs in servers) + " us",
            " / ".join(median_of(runs, "p50_ms", "{:.2f}") for runs in servers) + " ms",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratios(numerators: list[Run], denominators: list[Run]) -> list[float]:
    """Per-round ratios of requests per second (none where either server was not measured)."""
    if not numerators or not denominators:
        return []
    pairs = zip(numerators, denominators, strict=True)
    return [top.requests_per_second / bottom.requests_per_second for top, bottom in pairs]


def spread(values: list[float]) -> str:
    """ "0.97x (0.85-1.10)": the median and the range of per-round ratios; "-" for none."""
    if not values:
        return "-"
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def median_of(runs: list[Run], field: str, form: str) -> str:
    if not runs:
        return "-"
    return form.format(statistics.median(getattr(run, field) for run in runs))


WORK_NAMES = {"trivial": "trivial (a small dict)", "forest": "CPU-bound (60-tree forest)"}


def round_order(names: list[str], round_number: int) -> list[str]:
    """The order in which one round loads the servers.

    Rounds rotate the order (each server first once in every len(names) rounds), and every other cycle of
    rotations is reversed, so over 2 * len(names) rounds each server follows each other one equally often
    (with three servers: all six orders).
    """
    shift = round_number % len(names)
    order = names[shift:] + names[:shift]
    return order[::-1] if (round_number // len(names)) % 2 else order


def measure(wrk: str, script: Path, servers: Servers, connections: int, rounds: int, duration: int) -> Row:
    """Every server of `servers` loaded at `connections` in interleaved rounds: one row of the table."""
    measured = servers.measured()
    for process, url in measured.values():  # warm up: connections, caches, pools
        load(wrk, script, servers.placement, process, url, connections, 2)
    runs: dict[str, list[Run]] = {name: [] for name in ("bare", "control", "ours")}
    for round_number in range(rounds):
        for name in round_order(list(measured), round_number):
            process, url = measured[name]
            # Each measured run follows a short one on the same server: without it, a server measured
            # right after another one ran slower than one measured after itself (by 10-25 % here).
            load(wrk, script, servers.placement, process, url, connections, 1)
            runs[name].append(load(wrk, script, servers.placement, process, url, connections, duration))
        print(
            f"  {connections} connection(s), round {round_number + 1}: "
            + ", ".join(f"{SERVER_NAMES[name]} {runs[name][-1].requests_per_second:,.0f}" for name in measured)
            + " req/s",
            flush=True,
        )
    return Row(
        servers.work, servers.processes, connections, runs["bare"], runs["control"], runs["ours"], servers.refused
    )


SERVER_NAMES = {"bare": "bare", "control": "bare (2nd)", "ours": "ours"}


def load(
    wrk: str, script: Path, placement: Placement, process: subprocess.Popen[bytes], url: str, connections: int,
    duration: int,
) -> Run:  # fmt: skip
    """One wrk run against `url` (loopback); fails on any error or non-2xx answer."""
    assert url.startswith("http://127.0.0.1:"), url
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url + "/"]
    cpu_before = tree_cpu_seconds(process.pid)
    output = subprocess.run(
        [*placement.wrk, *command], check=True, capture_output=True, text=True, timeout=duration + 30
    ).stdout
    cpu = tree_cpu_seconds(process.pid) - cpu_before
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk against {url} met errors:\n{output}")
    requests = int(_field(r"(\d+) requests in", output))
    return Run(
        float(_field(r"Requests/sec:\s+([\d.]+)", output)),
        _milliseconds(_field(r"\n\s+50%\s+(\S+)", output)),
        cpu / max(requests, 1) * 1e6,
    )


def instructions_main(args: argparse.Namespace) -> None:
    """`--instructions N`: instructions per request of the bare app (as it is, importing boto3) and ours."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("bench.serving: --instructions expected valgrind on PATH, found none (apt-get install valgrind)")
    print(f"# instructions per request (callgrind), {time.strftime('%Y-%m-%d %H:%M %Z')} on {machine()}")
    print(f"# server stack: {stack('installed')}; {args.instructions} requests, 4 at a time, after 20 to warm up")
    lines = [
        "| handler | bare Starlette, instructions per request | the bare app importing boto3 | reloader serve "
        "| ours / bare | ours / bare importing boto3 |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="reloader-bench-instructions-") as tmp:
        folder = Path(tmp)
        model_dir = write_forest(folder / "models" / "forest")
        for work in args.work or ["trivial", "forest"]:
            # The bare app twice: as it is, and with boto3's three process-wide warnings filters (see the README)
            bare, bare_boto3, ours = (
                count_instructions(folder, work, which, model_dir, args.threads, args.instructions, with_boto3)
                for which, with_boto3 in (("bare", False), ("bare", True), ("ours", False))
            )
            print(f"  {work}: bare {bare:,.0f}, bare importing boto3 {bare_boto3:,.0f}, ours {ours:,.0f}", flush=True)
            lines.append(
                f"| {WORK_NAMES[work]} | {bare:,.0f} | {bare_boto3:,.0f} | {ours:,.0f} | {ours / bare:.3f}x "
                f"| {ours / bare_boto3:.3f}x |"
            )
    print()
    print("\n".join(lines))


def count_instructions(
    folder: Path, work: str, which: str, model_dir: Path, threads: int, requests: int, bare_imports_boto3: bool
) -> float:
    """One server under callgrind: zero the counters after a warm-up, send `requests`, dump; instructions each."""
    from concurrent.futures import ThreadPoolExecutor

    port = free_port()
    if which == "bare":
        arguments = ["bench.serving_app", "--work", work, "--model", str(model_dir), "--threads", str(threads)]
        arguments += ["--import-boto3"] if bare_imports_boto3 else []
    else:
        spec = folder / f"{work}-instructions.yaml"
        spec.write_text(yaml.safe_dump([reloader_spec(work, model_dir.parent, threads)]))
        arguments = ["agent.cli", "serve", str(spec)]
    name = f"{which}{'-boto3' if bare_imports_boto3 else ''}-{work}"
    output, log = folder / f"callgrind-{name}.out", folder / f"callgrind-{name}.log"
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={output}", sys.executable, "-m", *arguments]
    process = subprocess.Popen(
        [*command, "--port", str(port)], cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if _wait_for_answer(process, url, log, timeout=900):
            raise RuntimeError(f"{which} exited under valgrind; see {log}")
        clients = [httpx.Client(timeout=300) for _ in range(4)]
        for _ in range(20):
            clients[0].post(url + "/", json=PAYLOAD)
        subprocess.run(["callgrind_control", "--zero", str(process.pid)], check=True, capture_output=True)
        with ThreadPoolExecutor(4) as pool:
            codes = set(pool.map(lambda i: clients[i % 4].post(url + "/", json=PAYLOAD).status_code, range(requests)))
        if codes != {200}:
            raise RuntimeError(f"{which} answered {sorted(codes)}, expected only 200")
        subprocess.run(["callgrind_control", "--dump", str(process.pid)], check=True, capture_output=True)
        dump = Path(f"{output}.1")
        return int(_field(r"\nsummary: (\d+)", dump.read_text(errors="replace"))) / requests
    finally:
        stop(process)


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live descendants (uvicorn's workers, our serving processes)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            total += cpu_seconds(current)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except FileNotFoundError:  # exited meanwhile
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, every thread included (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _field(pattern: str, output: str) -> str:
    match = re.search(pattern, output)
    if match is None:
        raise RuntimeError(f"expected {pattern!r} in wrk's output, found:\n{output}")
    return match.group(1)


def _milliseconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def write_forest(model: Path) -> Path:
    """Version 1 of a 60-tree random forest fitted on iris; returns the version's folder."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    features, targets = load_iris(return_X_y=True)
    version = model / "1"
    version.mkdir(parents=True)
    estimator = RandomForestClassifier(n_estimators=60, random_state=0).fit(features, targets)
    (version / "model.pkl").write_bytes(pickle.dumps(estimator))
    return version


def start_servers(
    folder: Path, work: str, processes: int, model_dir: Path, threads: int, stack_name: str, placement: Placement,
    control: bool = True, bare_imports_boto3: bool = False,
) -> Servers:  # fmt: skip
    """The bare app, its control (the same command on another port) and `reloader serve`, all started alike."""
    python = [sys.executable, "-c", HIDE_STANDARD + "import runpy; runpy.run_module('{}', run_name='__main__')"]
    bare_command = ["bench.serving_app", "--work", work, "--model", str(model_dir), "--threads", str(threads)]
    bare_command += ["--workers", str(processes)] + (["--import-boto3"] if bare_imports_boto3 else [])
    spec = folder / f"{work}-{processes}.yaml"
    spec.write_text(yaml.safe_dump([reloader_spec(work, model_dir.parent, threads, processes)]))
    commands = {"bare": bare_command, "ours": ["agent.cli", "serve", str(spec)]}
    if control:
        commands["control"] = bare_command
    started: dict[str, tuple[Server, Path]] = {}
    for name, command in commands.items():
        port, log = free_port(), folder / f"{name}-{work}-{processes}.log"
        process = _start(python, stack_name, placement, [*command, "--port", str(port)], log)
        started[name] = (process, f"http://127.0.0.1:{port}"), log
    refused = ""
    for name, ((process, url), log) in started.items():
        exited = _wait_for_answer(process, url, log)
        if exited and name == "ours" and process.returncode == EXIT_SPEC:
            refused = f"`reloader serve` refused `processes_per_replica: {processes}` (exit 2)"
            print(f"  {refused}: {exited.strip()}; only the bare apps are measured", flush=True)
        elif exited:
            for (other, _), _ in started.values():
                stop(other)
            raise RuntimeError(f"{process.args} exited with {process.returncode}: {exited}")
    servers = {name: server for name, (server, _) in started.items()}
    return Servers(
        work, processes, placement, servers["bare"], servers.get("control"),
        None if refused else servers["ours"], refused,
    )  # fmt: skip


def _start(
    python: list[str], stack_name: str, placement: Placement, module_and_args: list[str], log: Path
) -> subprocess.Popen[bytes]:
    module, *arguments = module_and_args
    if stack_name == "pure":
        command = [*python[:2], python[2].format(module), *arguments]
    else:
        command = [sys.executable, "-m", module, *arguments]
    return subprocess.Popen([*placement.servers, *command], cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _wait_for_answer(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 60) -> str:
    """Wait until the server answers `/` (returns ""), or until it exits (returns its log's last line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines()
            return lines[-1] if lines else "no output"
        try:
            if httpx.post(url + "/", json=PAYLOAD, timeout=2).status_code == 200:
                return ""
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{process.args} did not answer {url} within {timeout} s; see {log}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def reloader_spec(work: str, model: Path, threads: int, processes: int = 1) -> dict[str, object]:
    return {
        "name": f"bench-{work}",
        "kind": "RealtimeAPI",
        "handler": {
            "type": "python",
            "path": str(ROOT / "bench" / "serving_app.py"),
            "config": {"work": work},
            "threads_per_process": threads,
            "processes_per_replica": processes,
            "multi_model_reloading": {"path": str(model)},
        },
        # the scan interval of an API with an event source; no AWS here
        "reloading": {"interval": 300},
    }


def stack(name: str) -> str:
    if name == "pure":
        return "uvicorn with h11 and asyncio (httptools and uvloop hidden)"
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"uvicorn with {http} and {loop}"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min), {fifteen:.2f} (15 min)"


def machine() -> str:
    cores = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    model = ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line), "")
    except OSError:
        pass
    return f"{cores} cores ({model or platform.processor()}), Python {platform.python_version()}"


if __name__ == "__main__":
    main()
