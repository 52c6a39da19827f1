"""Benchmark: requests per second of `reloader serve` against a bare Starlette app on the same server stack.

    make bench-serving              # or: .venv/bin/python -m bench.serving [--help]
    make bench-processes            # the same with 1 and 2 processes: --processes 1,2

For each work, a trivial handler (a small dict back) and a CPU-bound one (a 60-tree scikit-learn
forest predicting one row), two servers run side by side, each as its own process with uvicorn
configured alike: `reloader serve` (`threads_per_process: 4`) and a bare Starlette app (a sync
endpoint through `run_in_threadpool`, anyio's thread limit set to 4); see bench/serving_app.py.
wrk (16 connections, one thread, loopback only) loads one server at a time, in interleaved
rounds (the order alternates each round, and each measured run follows a 1 s run on the same
server), so a change in the host's speed touches both alike. The servers share CPU 0 and wrk
runs on CPU 1 (`--no-pin`: wherever the scheduler puts them).
The table gives the median requests per second of each, the median of the per-round ratios
reloader / bare (target >= 0.95) with their range, that median over the quieter half of the rounds
(those where the two together answered most: other load on the host only lowers throughput), and
each server's CPU time per request (every thread of its process, from /proc). No AWS is involved:
the model is a local folder. `--stack pure` hides httptools and uvloop from both servers (uvicorn's
pure-Python fallback: h11 and asyncio).

`--instructions N` (make bench-instructions) counts instructions per request instead, under
valgrind's callgrind: the bare app as it is, the bare app importing boto3 (whose urllib3 and botocore
add three process-wide warnings filters, which scikit-learn replays for every tree of a forest's
predict) and ours. On a shared 2-core host the wall-clock ratio of one run moves by 2x between rounds;
the instruction count does not.

`--processes 1,2` (issue 11) runs each work with 1 and with 2 processes: `reloader serve` with
`handler.processes_per_replica: N` against the bare app under uvicorn's own `--workers N`
(spawned worker processes sharing one socket). CPU time is then that of the whole process tree. With
N processes the servers get CPUs 0..N-1 and wrk the next one, where the machine has that many; on
fewer (2 processes on 2 cores) nothing is pinned. Where `reloader serve` refuses the spec (exit 2: a
build without `processes_per_replica` above 1), that row is skipped, saying so.
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


@dataclass(frozen=True)
class Pair:
    """The two servers of one row, started alike; `ours` is None where `reloader serve` refused the spec."""

    work: str
    processes: int
    placement: Placement
    bare: tuple[subprocess.Popen[bytes], str]
    ours: tuple[subprocess.Popen[bytes], str] | None
    refused: str = ""


@dataclass(frozen=True)
class Row:
    work: str
    processes: int
    placement: Placement
    bare: list[Run]
    ours: list[Run]
    skipped: str = ""


@dataclass(frozen=True)
class Run:
    requests_per_second: float
    p50_ms: float
    cpu_us_per_request: float  # the server process's CPU time (every thread), per request answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds per work (default 10)")
    parser.add_argument("--duration", type=int, default=3, help="seconds of load per server and round (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=4, help="threads_per_process and the bare thread limit")
    parser.add_argument("--work", choices=["trivial", "forest"], action="append", help="only this work (repeatable)")
    parser.add_argument(
        "--processes", default="1",
        help="comma-separated process counts: processes_per_replica for ours, uvicorn --workers for the bare app "
        "(default 1; make bench-processes: 1,2)",
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
        help="diagnostic: the bare app imports boto3 too, so both processes carry the same warnings filters "
        "(scikit-learn replays every filter for each tree of a forest's predict; see the README)",
    )  # fmt: skip
    parser.add_argument(
        "--no-pin", action="store_true",
        help="let the scheduler place the servers and wrk (default: servers on CPU 0, wrk on CPU 1)",
    )  # fmt: skip
    args = parser.parse_args()
    process_counts = [int(count) for count in args.processes.split(",")]
    if min(process_counts) < 1:
        parser.error(f"--processes: expected counts of 1 or more, found {args.processes!r}")
    if args.stack == "pure" and max(process_counts) > 1:
        parser.error("--stack pure hides httptools and uvloop in this process only, not in spawned workers: use 1")
    if args.instructions:
        instructions_main(args)
        return
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("bench.serving: expected wrk on PATH, found none (apt-get install wrk; make bench-serving does it)")
    print(f"# serving benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')} on {machine()}")
    print(f"# server stack: {stack(args.stack)}; wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds")
    print(f"# load average at the start: {load_average()}")
    if args.bare_imports_boto3:
        print("# diagnostic: the bare app imports boto3 (the same warnings filters as reloader serve)")
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
                pair = start_pair(
                    folder, work, processes, model_dir, args.threads, args.stack, placement, args.bare_imports_boto3
                )
                try:
                    rows.append(compare(wrk, script, pair, args))
                finally:
                    for process, _ in (pair.bare, pair.ours) if pair.ours else (pair.bare,):
                        stop(process)
    print(f"# load average at the end: {load_average()}")
    print()
    print(table(rows))


def table(rows: list[Row]) -> str:
    lines = [
        "| handler | processes | bare Starlette req/s | reloader serve req/s | ratio (range of rounds) "
        "| ratio, quieter half | CPU per request, bare / ours | p50 latency, bare / ours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:

        def median(runs: list[Run], field: str) -> float:
            return statistics.median(getattr(run, field) for run in runs)

        bare_rps = f"{median(row.bare, 'requests_per_second'):,.0f}"
        if row.skipped:
            lines.append(f"| {WORK_NAMES[row.work]} | {row.processes} | {bare_rps} | skipped: {row.skipped} | | | | |")
            continue
        pairs = list(zip(row.ours, row.bare, strict=True))
        ratios = [o.requests_per_second / b.requests_per_second for o, b in pairs]
        # Other load on the host only ever lowers throughput: the rounds where both servers did most
        # are those it disturbed least, and their ratio is the steadier estimate.
        quiet = sorted(pairs, key=lambda pair: pair[0].requests_per_second + pair[1].requests_per_second)
        quiet_ratios = [o.requests_per_second / b.requests_per_second for o, b in quiet[len(quiet) // 2 :]]
        lines.append(
            f"| {WORK_NAMES[row.work]} | {row.processes} | {bare_rps} "
            f"| {median(row.ours, 'requests_per_second'):,.0f} "
            f"| {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) "
            f"| {statistics.median(quiet_ratios):.2f}x "
            f"| {median(row.bare, 'cpu_us_per_request'):,.0f} / {median(row.ours, 'cpu_us_per_request'):,.0f} us "
            f"| {median(row.bare, 'p50_ms'):.2f} / {median(row.ours, 'p50_ms'):.2f} ms |"
        )
    return "\n".join(lines)


WORK_NAMES = {"trivial": "trivial (a small dict)", "forest": "CPU-bound (60-tree forest)"}


def compare(wrk: str, script: Path, pair: Pair, args: argparse.Namespace) -> Row:
    servers = {"bare": pair.bare} if pair.ours is None else {"bare": pair.bare, "ours": pair.ours}
    for process, url in servers.values():
        load(wrk, script, pair.placement, process, url, args.connections, 2)  # warm up: connections, caches, pools
    runs: dict[str, list[Run]] = {name: [] for name in servers}
    for round_number in range(args.rounds):
        order = list(servers.items())
        if round_number % 2:
            order.reverse()
        for name, (process, url) in order:
            # Each measured run follows a short one on the same server: without it, a server measured
            # right after the other one ran slower than one measured after itself (by 10-25 % here).
            load(wrk, script, pair.placement, process, url, args.connections, 1)
            runs[name].append(load(wrk, script, pair.placement, process, url, args.connections, args.duration))
        print(
            f"  round {round_number + 1}: "
            + ", ".join(f"{name} {runs[name][-1].requests_per_second:,.0f} req/s" for name in servers),
            flush=True,
        )
    return Row(pair.work, pair.processes, pair.placement, runs["bare"], runs.get("ours", []), pair.refused)


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


def start_pair(
    folder: Path, work: str, processes: int, model_dir: Path, threads: int, stack_name: str, placement: Placement,
    bare_imports_boto3: bool = False,
) -> Pair:  # fmt: skip
    python = [sys.executable, "-c", HIDE_STANDARD + "import runpy; runpy.run_module('{}', run_name='__main__')"]
    bare_port, our_port = free_port(), free_port()
    bare_command = ["bench.serving_app", "--work", work, "--model", str(model_dir), "--threads", str(threads)]
    bare_command += ["--workers", str(processes), "--port", str(bare_port)]
    if bare_imports_boto3:
        bare_command.append("--import-boto3")
    spec = folder / f"{work}-{processes}.yaml"
    spec.write_text(yaml.safe_dump([reloader_spec(work, model_dir.parent, threads, processes)]))
    our_command = ["agent.cli", "serve", str(spec), "--port", str(our_port)]
    logs = folder / f"bare-{work}-{processes}.log", folder / f"ours-{work}-{processes}.log"
    bare = _start(python, stack_name, placement, bare_command, logs[0])
    ours = _start(python, stack_name, placement, our_command, logs[1])
    bare_pair, our_pair = (bare, f"http://127.0.0.1:{bare_port}"), (ours, f"http://127.0.0.1:{our_port}")
    refused = ""
    for (process, url), log in zip((bare_pair, our_pair), logs, strict=True):
        exited = _wait_for_answer(process, url, log)
        if exited and process is ours and process.returncode == EXIT_SPEC:
            refused = f"`reloader serve` refused `processes_per_replica: {processes}` (exit 2)"
            print(f"  {refused}: {exited.strip()}; only the bare app is measured", flush=True)
        elif exited:
            stop(bare)
            stop(ours)
            raise RuntimeError(f"{process.args} exited with {process.returncode}: {exited}")
    return Pair(work, processes, placement, bare_pair, None if refused else our_pair, refused)


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
