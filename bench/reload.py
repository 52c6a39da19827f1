"""Benchmark: how fast a new version serves, what an idle replica costs, and how event handling scales.

    make bench                      # or: .venv/bin/python -m bench.reload [--help]

Runs against a LocalStack of its own (started and stopped here) unless AWS_ENDPOINT_URL is set,
with `reloader serve` as a real process and a real (small) scikit-learn model. Prints three tables:
1. reload latency measured from outside: from the moment the upload of a version completes (its
   marker is written) to the first HTTP answer from that version; event mode vs polling at Cortex's 10 s;
2. idle cost: S3 and SQS requests per hour per replica, counted from the agent's own /metrics;
3. scale: time to apply one event when the bucket holds 10 models and when it holds 10,000.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from tests.support import (
    Models,
    PrivateLocalStack,
    ServeFactory,
    Server,
    api_spec,
    metric,
    notify_queue,
    tagged_model,
)

MARKER = "_READY"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reloads", type=int, default=20, help="reloads measured per mode (default 20)")
    parser.add_argument("--polling-interval", type=float, default=10.0, help="polling mode's scan interval, s")
    parser.add_argument(
        "--idle-seconds", type=float, default=330.0, help="idle window counted per mode, s (covers one 300 s scan)"
    )
    parser.add_argument("--scale", default="10,10000", help="model counts for the scale table (default 10,10000)")
    parser.add_argument("--events-per-scale", type=int, default=10, help="events timed per model count")
    parser.add_argument(
        "--only", choices=["latency", "idle", "scale"], action="append", help="run only these tables (repeatable)"
    )
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    print(f"# model-reloader benchmark, {time.strftime('%Y-%m-%d %H:%M')} on {machine()}")
    with endpoint() as url, tempfile.TemporaryDirectory(prefix="reloader-bench-") as tmp:
        bench = Bench(url, Path(tmp))
        try:
            tables = args.only or ["latency", "idle", "scale"]
            if "latency" in tables:
                bench.latency(args.reloads, args.polling_interval)
            if "idle" in tables:
                bench.idle(args.idle_seconds, args.polling_interval)
            if "scale" in tables:
                bench.scale([int(n) for n in args.scale.split(",")], args.events_per_scale)
        finally:
            bench.serve.stop_all()


class Bench:
    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.s3 = boto3.client("s3", endpoint_url=url)
        self.sqs = boto3.client("sqs", endpoint_url=url)
        self.serve = ServeFactory(tmp, url)

    def bucket(self) -> str:
        name = f"bench-{uuid.uuid4().hex[:10]}"
        self.s3.create_bucket(Bucket=name)
        return name

    def start(self, bucket: str, models: dict[str, str], reloading: dict[str, object]) -> Server:
        spec = self.serve.spec(api_spec(models, name="bench", reloading=reloading), name=f"{bucket}.yaml")
        return self.serve.start(spec, ready_timeout=1800)

    # -- 1. latency -------------------------------------------------------------------------
    def latency(self, reloads: int, polling_interval: float) -> None:
        results = {}
        for mode in ("event", "polling"):
            bucket = self.bucket()
            models = Models(self.s3, bucket)
            models.put_version("m", 1, tag=1.0, marker=MARKER)
            reloading: dict[str, object] = {"ready_marker": MARKER, "jitter": 0}
            if mode == "event":
                reloading.update(queue_url=notify_queue(self.s3, self.sqs, bucket), interval=3600)
            else:
                reloading.update(interval=polling_interval)
            server = self.start(bucket, {"path": f"s3://{bucket}/m"}, reloading)
            samples = []
            for version in range(2, reloads + 2):
                body = tagged_model(float(version))
                # Uploads land at random moments, as in life: else polling would be measured in phase with its scans.
                time.sleep(random.uniform(0, polling_interval if mode == "polling" else 0.2))
                self.s3.put_object(Bucket=bucket, Key=f"m/{version}/model.pkl", Body=body)
                self.s3.put_object(Bucket=bucket, Key=f"m/{version}/{MARKER}", Body=b"")
                samples.append(time_until_served(server, float(version)))
            server.stop()
            results[mode] = samples
        print(f"\n## 1. Reload latency: marker written -> first answer from the new version ({reloads} reloads)\n")
        print("| mode | p50 | p95 | max |")
        print("|---|---|---|---|")
        for mode, samples in results.items():
            label = "events (SQS)" if mode == "event" else f"polling every {polling_interval:g} s (Cortex)"
            print(f"| {label} | {ms(pct(samples, 50))} | {ms(pct(samples, 95))} | {ms(max(samples))} |")
        ratio = pct(results["polling"], 50) / pct(results["event"], 50)
        print(f"\nevents are {ratio:.0f}x faster than polling at p50")

    # -- 2. idle cost -----------------------------------------------------------------------
    def idle(self, seconds: float, polling_interval: float) -> None:
        rows = []
        for mode in ("event", "polling"):
            bucket = self.bucket()
            Models(self.s3, bucket).put_version("m", 1, tag=1.0, marker=MARKER)
            reloading: dict[str, object] = {"ready_marker": MARKER, "jitter": 0}
            if mode == "event":
                reloading.update(queue_url=notify_queue(self.s3, self.sqs, bucket), interval=300)  # the default
            else:
                reloading.update(interval=polling_interval)
            server = self.start(bucket, {"path": f"s3://{bucket}/m"}, reloading)
            before = requests_made(server)
            time.sleep(seconds)  # idle is what is measured
            after = requests_made(server)
            server.stop()
            rows.append((mode, {op: after[op] - before.get(op, 0.0) for op in after}))
        print(f"\n## 2. Idle cost per replica, one model: requests counted over {seconds:g} s (and per hour)\n")
        print("| mode | S3 ListObjectsV2 | S3 GET/HEAD | SQS ReceiveMessage | every S3 and SQS request |")
        print("|---|---|---|---|---|")
        for mode, counted in rows:
            label = "events (SQS long poll, 300 s scan)" if mode == "event" else f"polling every {polling_interval:g} s"
            lists = counted.get("S3 ListObjectsV2", 0.0)
            gets = counted.get("S3 GetObject", 0.0) + counted.get("S3 HeadObject", 0.0)
            receives = counted.get("SQS ReceiveMessage", 0.0)
            cells = [per_hour(n, seconds) for n in (lists, gets, receives, sum(counted.values()))]
            print(f"| {label} | " + " | ".join(cells) + " |")

    # -- 3. scale ---------------------------------------------------------------------------
    def scale(self, sizes: list[int], events: int) -> None:
        rows = []
        for size in sizes:
            bucket = self.bucket()
            body = tagged_model(1.0)
            with ThreadPoolExecutor(32) as pool:
                for index in range(size):
                    for key, data in (
                        (f"zoo/model-{index:05d}/1/model.pkl", body),
                        (f"zoo/model-{index:05d}/1/{MARKER}", b""),
                    ):
                        pool.submit(self.s3.put_object, Bucket=bucket, Key=key, Body=data)
            reloading = {"ready_marker": MARKER, "interval": 3600, "queue_url": notify_queue(self.s3, self.sqs, bucket)}
            started = time.monotonic()
            server = self.start(bucket, {"dir": f"s3://{bucket}/zoo"}, reloading)
            startup = time.monotonic() - started
            samples = []
            client_list = client_list_time(self.s3, bucket, "zoo/model-00000/")
            lists_before = list_timing(server)
            for event in range(events):
                name = f"model-{(event * 7919) % size:05d}"
                tag = 100.0 + event
                self.s3.put_object(Bucket=bucket, Key=f"zoo/{name}/{2 + event}/model.pkl", Body=tagged_model(tag))
                self.s3.put_object(Bucket=bucket, Key=f"zoo/{name}/{2 + event}/{MARKER}", Body=b"")
                samples.append(time_until_served(server, tag, model=name))
            lists_after = list_timing(server)
            server.stop()
            calls = lists_after[0] - lists_before[0]
            mean_list = (lists_after[1] - lists_before[1]) / calls if calls else 0.0
            rows.append((size, calls / events, mean_list, startup, samples, client_list))
        print(f"\n## 3. Scale: one event applied (marker written -> served), {events} events per bucket, `dir` mode\n")
        print(
            "| models in bucket | p50 | max | S3 LISTs per event | mean S3 LIST time (agent) "
            "| one model's LIST from a bare client (median of 20) | initial load of all models |"
        )
        print("|---|---|---|---|---|---|---|")
        for size, lists, mean_list, startup, samples, client_list in rows:
            print(
                f"| {size:,} | {ms(pct(samples, 50))} | {ms(max(samples))} | {lists:.1f} | {mean_list * 1000:.1f} ms "
                f"| {client_list * 1000:.1f} ms | {startup:.1f} s |"
            )
        if len(rows) > 1:
            first, last = rows[0], rows[-1]
            ratio = pct(last[4], 50) / pct(first[4], 50)
            own = [pct(row[4], 50) - row[1] * row[2] for row in (first, last)]
            print(
                f"\np50 with {last[0]:,} models / p50 with {first[0]:,}: {ratio:.2f}; without the time S3 spends "
                f"listing (p50 - LISTs x mean LIST time): {ms(own[0])} and {ms(own[1])}, ratio {own[1] / own[0]:.2f}"
            )


def time_until_served(server: Server, tag: float, model: str | None = None, timeout: float = 60) -> float:
    """Seconds from now until the API first answers with `tag`, polling as fast as it answers."""
    params = {"model": model} if model else {}
    started = time.perf_counter()
    deadline = started + timeout
    while time.perf_counter() < deadline:
        response = server.http.post("/", json={}, params=params)
        if response.status_code == 200 and response.json()["prediction"] == tag:
            return time.perf_counter() - started
    raise TimeoutError(f"version with tag {tag} not served within {timeout} s")


def list_timing(server: Server) -> tuple[float, float]:
    """(calls, seconds) the agent has spent in S3 ListObjectsV2 so far."""
    return (
        metric(server, "reloader_s3_request_seconds_count", operation="ListObjectsV2"),
        metric(server, "reloader_s3_request_seconds_sum", operation="ListObjectsV2"),
    )


def requests_made(server: Server) -> dict[str, float]:
    """Every S3 and SQS request the agent has counted so far, by "<service> <operation>"."""
    from prometheus_client.parser import text_string_to_metric_families

    made: dict[str, float] = {}
    for family in text_string_to_metric_families(server.http.get("/metrics").text):
        for sample in family.samples:
            if sample.name in ("reloader_s3_requests_total", "reloader_sqs_requests_total"):
                service = "S3" if sample.name.startswith("reloader_s3") else "SQS"
                key = f"{service} {sample.labels['operation']}"
                made[key] = made.get(key, 0.0) + sample.value
    return made


def per_hour(count: float, seconds: float) -> str:
    return f"{count:.0f} ({count * 3600 / seconds:.0f}/h)"


def client_list_time(s3: Any, bucket: str, prefix: str, repeats: int = 20) -> float:
    """Median seconds of one ListObjectsV2 of `prefix` made directly by a client: what S3 itself costs."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def pct(samples: list[float], percentile: int) -> float:
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[percentile - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, LocalStack 4.13.1"


@contextmanager
def endpoint() -> Iterator[str]:
    configured = os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        yield configured
        return
    instance = PrivateLocalStack(Path(tempfile.mkdtemp(prefix="localstack-bench-")))
    instance.start()
    os.environ["AWS_ENDPOINT_URL"] = instance.endpoint
    try:
        yield instance.endpoint
    finally:
        instance.stop()


if __name__ == "__main__":
    main()
