"""Benchmark: requests per second of `reloader serve` against a bare Starlette app on the same server stack.

    make bench-serving              # or: .venv/bin/python -m bench.serving [--help]

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
from tests.support import ROOT, free_port, wait_until

# Command prefixes pinning the servers and wrk. On 2 cores, a GIL-bound server whose threads the scheduler
# spreads over both ran the forest at 3.2 or at 6.2 ms of CPU per request depending on the process, which
# dwarfs what is measured. The servers share CPU 0 (one is loaded at a time), wrk has CPU 1.
PIN: dict[str, list[str]] = {"servers": [], "wrk": []}
HIDE_STANDARD = "import sys; sys.modules['uvloop'] = None; sys.modules['httptools'] = None; "
WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = '{json.dumps(PAYLOAD)}'
wrk.headers["Content-Type"] = "application/json"
"""


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
        "--stack", choices=["installed", "pure"], default="installed",
        help="installed: what the virtualenv has (uvicorn[standard]: httptools, uvloop); pure: h11 and asyncio",
    )  # fmt: skip
    parser.add_argument(
        "--no-pin", action="store_true",
        help="let the scheduler place the servers and wrk (default: servers on CPU 0, wrk on CPU 1)",
    )  # fmt: skip
    args = parser.parse_args()
    if not args.no_pin and len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset"):
        PIN.update(servers=["taskset", "-c", "0"], wrk=["taskset", "-c", "1"])
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("bench.serving: expected wrk on PATH, found none (apt-get install wrk; make bench-serving does it)")
    print(f"# serving benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')} on {machine()}")
    print(f"# server stack: {stack(args.stack)}; wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds")
    print(f"# {'servers on CPU 0, wrk on CPU 1' if PIN['wrk'] else 'placed by the scheduler'}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="reloader-bench-serving-") as tmp:
        folder = Path(tmp)
        model_dir = write_forest(folder / "models" / "forest")
        script = folder / "post.lua"
        script.write_text(WRK_SCRIPT)
        for work in args.work or ["trivial", "forest"]:
            bare, ours = start_pair(folder, work, model_dir, args.threads, args.stack)
            try:
                rows.append((work, *compare(wrk, script, bare, ours, args)))
            finally:
                for process, _ in (bare, ours):
                    stop(process)
    print()
    print(table(rows))


def table(rows: list[tuple[str, list[Run], list[Run]]]) -> str:
    lines = [
        "| handler | bare Starlette req/s | reloader serve req/s | ratio (range of rounds) | ratio, quieter half "
        "| CPU per request, bare / ours | p50 latency, bare / ours |",
        "|---|---|---|---|---|---|---|",
    ]
    for work, bare_runs, our_runs in rows:
        pairs = list(zip(our_runs, bare_runs, strict=True))
        ratios = [o.requests_per_second / b.requests_per_second for o, b in pairs]
        # Other load on the host only ever lowers throughput: the rounds where both servers did most
        # are those it disturbed least, and their ratio is the steadier estimate.
        quiet = sorted(pairs, key=lambda pair: pair[0].requests_per_second + pair[1].requests_per_second)
        quiet_ratios = [o.requests_per_second / b.requests_per_second for o, b in quiet[len(quiet) // 2 :]]

        def median(runs: list[Run], field: str) -> float:
            return statistics.median(getattr(run, field) for run in runs)

        lines.append(
            f"| {WORK_NAMES[work]} | {median(bare_runs, 'requests_per_second'):,.0f} "
            f"| {median(our_runs, 'requests_per_second'):,.0f} "
            f"| {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) "
            f"| {statistics.median(quiet_ratios):.2f}x "
            f"| {median(bare_runs, 'cpu_us_per_request'):,.0f} / {median(our_runs, 'cpu_us_per_request'):,.0f} us "
            f"| {median(bare_runs, 'p50_ms'):.2f} / {median(our_runs, 'p50_ms'):.2f} ms |"
        )
    return "\n".join(lines)


WORK_NAMES = {"trivial": "trivial (a small dict)", "forest": "CPU-bound (60-tree forest)"}


def compare(
    wrk: str, script: Path, bare: tuple[subprocess.Popen[bytes], str], ours: tuple[subprocess.Popen[bytes], str],
    args: argparse.Namespace,
) -> tuple[list[Run], list[Run]]:  # fmt: skip
    for process, url in (bare, ours):
        load(wrk, script, process, url, args.connections, 2)  # warm up: connections, caches, thread pools
    bare_runs: list[Run] = []
    our_runs: list[Run] = []
    for round_number in range(args.rounds):
        order = [("bare", *bare), ("ours", *ours)]
        if round_number % 2:
            order.reverse()
        results = {}
        for name, process, url in order:
            # Each measured run follows a short one on the same server: without it, a server measured
            # right after the other one ran slower than one measured after itself (by 10-25 % here).
            load(wrk, script, process, url, args.connections, 1)
            results[name] = load(wrk, script, process, url, args.connections, args.duration)
        bare_runs.append(results["bare"])
        our_runs.append(results["ours"])
        print(
            f"  round {round_number + 1}: bare {results['bare'].requests_per_second:,.0f} req/s, "
            f"ours {results['ours'].requests_per_second:,.0f} req/s",
            flush=True,
        )
    return bare_runs, our_runs


def load(wrk: str, script: Path, process: subprocess.Popen[bytes], url: str, connections: int, duration: int) -> Run:
    """One wrk run against `url` (loopback); fails on any error or non-2xx answer."""
    assert url.startswith("http://127.0.0.1:"), url
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url + "/"]
    cpu_before = cpu_seconds(process.pid)
    output = subprocess.run(
        [*PIN["wrk"], *command], check=True, capture_output=True, text=True, timeout=duration + 30
    ).stdout
    cpu = cpu_seconds(process.pid) - cpu_before
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk against {url} met errors:\n{output}")
    requests = int(_field(r"(\d+) requests in", output))
    return Run(
        float(_field(r"Requests/sec:\s+([\d.]+)", output)),
        _milliseconds(_field(r"\n\s+50%\s+(\S+)", output)),
        cpu / max(requests, 1) * 1e6,
    )


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
    folder: Path, work: str, model_dir: Path, threads: int, stack_name: str
) -> tuple[tuple[subprocess.Popen[bytes], str], tuple[subprocess.Popen[bytes], str]]:
    python = [sys.executable, "-c", HIDE_STANDARD + "import runpy; runpy.run_module('{}', run_name='__main__')"]
    bare_port, our_port = free_port(), free_port()
    bare_command = ["bench.serving_app", "--work", work, "--model", str(model_dir), "--threads", str(threads)]
    spec = folder / f"{work}.yaml"
    spec.write_text(yaml.safe_dump([reloader_spec(work, model_dir.parent, threads)]))
    our_command = ["agent.cli", "serve", str(spec)]
    bare = _start(python, stack_name, [*bare_command, "--port", str(bare_port)], folder / f"bare-{work}.log")
    ours = _start(python, stack_name, [*our_command, "--port", str(our_port)], folder / f"ours-{work}.log")
    pair = ((bare, f"http://127.0.0.1:{bare_port}"), (ours, f"http://127.0.0.1:{our_port}"))
    for process, url in pair:
        wait_until(lambda p=process, u=url: _answers(p, u), timeout=60, interval=0.2, what=f"{url} to answer")
    return pair


def _start(python: list[str], stack_name: str, module_and_args: list[str], log: Path) -> subprocess.Popen[bytes]:
    module, *arguments = module_and_args
    if stack_name == "pure":
        command = [*python[:2], python[2].format(module), *arguments]
    else:
        command = [sys.executable, "-m", module, *arguments]
    return subprocess.Popen([*PIN["servers"], *command], cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _answers(process: subprocess.Popen[bytes], url: str) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"{process.args} exited with {process.returncode}")
    return httpx.post(url + "/", json=PAYLOAD, timeout=2).status_code == 200


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def reloader_spec(work: str, model: Path, threads: int) -> dict[str, object]:
    return {
        "name": f"bench-{work}",
        "kind": "RealtimeAPI",
        "handler": {
            "type": "python",
            "path": str(ROOT / "bench" / "serving_app.py"),
            "config": {"work": work},
            "threads_per_process": threads,
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
