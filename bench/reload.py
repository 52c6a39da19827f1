"""Benchmark: how fast a new version serves, what an idle replica costs, and how event handling scales.

    make bench                      # or: .venv/bin/python -m bench.reload [--help]

Runs against a LocalStack of its own (started and stopped here) unless AWS_ENDPOINT_URL is set,
with `reloader serve` as a real process and a real (small) scikit-learn model. Prints three tables:
1. reload latency measured from outside: from the moment the upload of a version completes (its
   marker is written) to the first HTTP answer from that version, in interleaved rounds (one reload
   per mode per round, in a shuffled order): queue mode, topic mode with one replica and with three
   on one topic, each beside its floor (a bare boto3 client doing only the AWS work: receive the
   marker's event, LIST the model's prefix, GET the version's objects in parallel), then polling at
   Cortex's 10 s; and where the time goes, per stage, from the agent's reloader_reload_stage_seconds.
   The bench finds the first answer by polling the replica as fast as it answers (stdlib http.client
   on one keep-alive connection), which loads the 2-core host; so each floor is measured twice per
   round: while the bench polls its mode's replica the same way (the floor the ratio is taken
   against: the same host load as ours), and with nothing polled (shown beside it);
2. idle cost: S3 and SQS requests per hour per replica, counted from the agent's own /metrics;
3. scale: time to apply one event when the bucket holds 10 models and when it holds 10,000;
4. early downloads: a version of several files, uploaded one after another, then its marker,
   served by a replica with `early_downloads` on and one with it off.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3

from agent.boundaries.aws import client as aws_client
from tests.support import (
    Models,
    PrivateLocalStack,
    ServeFactory,
    Server,
    api_spec,
    metric,
    notify_queue,
    notify_topic,
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
    parser.add_argument("--only", choices=TABLES, action="append", help="run only these tables (repeatable)")
    parser.add_argument("--shard-mb", type=int, default=25, help="size of each of the 3 shards of table 4, MB")
    parser.add_argument(
        "--modes",
        default=",".join(LATENCY_MODES),
        help=f"latency modes, in interleaved rounds (default {','.join(LATENCY_MODES)}; polling runs after them)",
    )
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    print(f"# model-reloader benchmark, {time.strftime('%Y-%m-%d %H:%M')} on {machine()}")
    with endpoint() as url, tempfile.TemporaryDirectory(prefix="reloader-bench-") as tmp:
        bench = Bench(url, Path(tmp))
        try:
            tables = args.only or TABLES
            if "latency" in tables:
                bench.latency(args.reloads, args.polling_interval, args.modes.split(","))
            if "idle" in tables:
                bench.idle(args.idle_seconds, args.polling_interval)
            if "scale" in tables:
                bench.scale([int(n) for n in args.scale.split(",")], args.events_per_scale)
            if "early" in tables:
                bench.early(args.reloads, args.shard_mb)
        finally:
            bench.serve.stop_all()


class Bench:
    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.s3 = boto3.client("s3", endpoint_url=url)
        self.sqs = boto3.client("sqs", endpoint_url=url)
        self.sns = boto3.client("sns", endpoint_url=url)
        self.serve = ServeFactory(tmp, url)

    def bucket(self) -> str:
        name = f"bench-{uuid.uuid4().hex[:10]}"
        self.s3.create_bucket(Bucket=name)
        return name

    def start(self, bucket: str, models: dict[str, str], reloading: dict[str, object], **handler: object) -> Server:
        spec = self.serve.spec(api_spec(models, name="bench", reloading=reloading, **handler), name=f"{bucket}.yaml")
        return self.serve.start(spec, ready_timeout=1800)

    # -- 1. latency -------------------------------------------------------------------------
    def latency(self, reloads: int, polling_interval: float, modes: list[str]) -> None:
        """Interleaved rounds: in each, one reload per mode in a shuffled order, so all modes see the same host."""
        runs = [self._latency_run(mode) for mode in modes if mode != "polling"]
        replicas = {run.mode: run.servers[0] for run in runs if isinstance(run, AgentRun)}
        for run in list(runs):
            if isinstance(run, FloorRun):  # poll the first agent mode it is the floor of, in LATENCY_MODES' order
                run.polled = next(
                    (replicas[m] for m in LATENCY_MODES if FLOOR_OF.get(m) == run.mode and m in replicas), None
                )
                if run.polled is not None:
                    twin = self._latency_run(run.mode)
                    assert isinstance(twin, FloorRun)
                    run.idle_twin = twin
                    runs.append(twin)
        try:
            for _ in range(reloads):
                random.shuffle(runs)
                for run in runs:
                    time.sleep(random.uniform(0, 0.2))  # de-phase from the long polls' and the scans' rhythm
                    run.reload()
        finally:
            for run in runs:
                run.close()
        if "polling" in modes:
            runs.append(self._polling_run(reloads, polling_interval))
        print_latency(runs, reloads)

    def _latency_run(self, mode: str) -> LatencyRun:
        bucket = self.bucket()
        models = Models(self.s3, bucket)
        models.put_version("m", 1, tag=1.0, marker=MARKER)
        if mode == "floor-queue":
            return FloorRun(mode, self.url, bucket, notify_queue(self.s3, self.sqs, bucket), "m/")
        if mode == "floor-topic":
            topic = notify_topic(self.s3, self.sns, bucket)
            return FloorRun(mode, self.url, bucket, subscribed_queue(self.sqs, self.sns, topic), "m/")
        reloading: dict[str, object] = {"ready_marker": MARKER, "jitter": 0, "interval": 3600}
        replicas = 3 if mode == "topic3" else 1
        queue_mode = mode.startswith("queue")
        if queue_mode:
            reloading["queue_url"] = notify_queue(self.s3, self.sqs, bucket)
        else:
            reloading.update(topic_arn=notify_topic(self.s3, self.sns, bucket), queue_prefix=f"bench{bucket[-6:]}")
        handler = {"processes_per_replica": 2} if mode == "queue-processes" else {}
        servers = []
        for replica in range(replicas):
            if not queue_mode:
                reloading["replica_id"] = f"r{replica}"
            servers.append(self.start(f"{bucket}-{replica}", {"path": f"s3://{bucket}/m"}, reloading, **handler))
        return AgentRun(mode, self.s3, bucket, servers)

    def _polling_run(self, reloads: int, polling_interval: float) -> LatencyRun:
        bucket = self.bucket()
        Models(self.s3, bucket).put_version("m", 1, tag=1.0, marker=MARKER)
        reloading: dict[str, object] = {"ready_marker": MARKER, "jitter": 0, "interval": polling_interval}
        run = AgentRun("polling", self.s3, bucket, [self.start(bucket, {"path": f"s3://{bucket}/m"}, reloading)])
        try:
            for _ in range(reloads):
                time.sleep(random.uniform(0, polling_interval))  # uploads land at random moments of the scan cycle
                run.reload()
        finally:
            run.close()
        run.stages.clear()  # the stages are those of event-driven loads
        return run

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

    # -- 4. early downloads -----------------------------------------------------------------
    def early(self, reloads: int, shard_mb: int) -> None:
        """A version of several files, uploaded one after another, then its marker: with and without
        early downloads, two replicas side by side in interleaved rounds (each on its own bucket)."""
        servers = {}
        for early in (True, False):
            bucket = self.bucket()
            Models(self.s3, bucket).put_version("m", 1, tag=1.0, marker=MARKER)
            reloading: dict[str, object] = {"ready_marker": MARKER, "jitter": 0, "interval": 3600}
            reloading.update(early_downloads=early, queue_url=notify_queue(self.s3, self.sqs, bucket))
            servers[early] = (bucket, self.start(bucket, {"path": f"s3://{bucket}/m"}, reloading))
        shards = [os.urandom(shard_mb * 2**20) for _ in range(3)]
        samples: dict[bool, list[float]] = {True: [], False: []}
        for version in range(2, reloads + 2):
            for early in random.sample([True, False], 2):
                bucket, server = servers[early]
                for index, shard in enumerate(shards):
                    self.s3.put_object(Bucket=bucket, Key=f"m/{version}/shard-{index}.bin", Body=shard)
                self.s3.put_object(Bucket=bucket, Key=f"m/{version}/model.pkl", Body=tagged_model(float(version)))
                self.s3.put_object(Bucket=bucket, Key=f"m/{version}/{MARKER}", Body=b"")
                samples[early].append(times_until_served([server], float(version))[0][0])
        for _, server in servers.values():
            server.stop()
        print(
            f"\n## 4. Early downloads: a version of 3 shards of {shard_mb} MB and a model.pkl, uploaded one after "
            f"another, then its marker ({reloads} reloads; marker written -> first answer)\n"
        )
        print("| early_downloads | p50 | p95 | max |")
        print("|---|---|---|---|")
        for early, values in samples.items():
            print(f"| {str(early).lower()} | {ms(pct(values, 50))} | {ms(pct(values, 95))} | {ms(max(values))} |")

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


TABLES = ["latency", "idle", "scale", "early"]
LATENCY_MODES = ["floor-queue", "queue", "queue-processes", "floor-topic", "topic", "topic3", "polling"]
LABELS = {
    "floor-queue": "floor, S3 -> SQS: bare boto3 (receive, LIST, parallel GETs)",
    "queue": "ours, queue mode (S3 -> SQS)",
    "queue-processes": "ours, queue mode, `processes_per_replica: 2` (the agent's process serves nothing)",
    "floor-topic": "floor, S3 -> SNS -> SQS: bare boto3 (receive, LIST, parallel GETs)",
    "topic": "ours, topic mode, 1 replica",
    "topic3": "ours, topic mode, 3 replicas on one topic (every replica's answer)",
    "polling": "ours, polling every 10 s (Cortex's interval)",
}
FLOOR_OF = {"queue": "floor-queue", "queue-processes": "floor-queue", "topic": "floor-topic", "topic3": "floor-topic"}
# The agent's stages (reloader_reload_stage_seconds), then the bench's own: the first answer after the swap.
STAGES = {
    "delivery": "event -> received",
    "dispatch": "-> reconcile",
    "list": "-> listed",
    "download": "-> downloaded",
    "load": "-> loaded",
    "swap": "-> swapped",
    "answer": "-> first answer",
}


def print_latency(runs: list[LatencyRun], reloads: int) -> None:
    """The latency table, then where the time goes."""
    twins = [run.idle_twin for run in runs if isinstance(run, FloorRun) and run.idle_twin is not None]
    runs = sorted((run for run in runs if run not in twins), key=by_mode_order)
    by_mode = {run.mode: run for run in runs}
    print(f"\n## 1. Reload latency: marker written -> first answer from the new version ({reloads} reloads)\n")
    print(f"Load average at the end: {load_average()}.\n")
    print("| mode | p50 | p95 | max | p50 / floor of its source | p50 / that floor with nothing polled |")
    print("|---|---|---|---|---|---|")
    for run in runs:
        floor = by_mode.get(run.floor_mode) if run.floor_mode else None
        ratios = ["-", "-"]
        if isinstance(floor, FloorRun) and floor.samples:
            p50 = pct(run.samples, 50)
            ratios = [f"{p50 / pct(floor.samples, 50):.2f}x"]
            twin = floor.idle_twin
            ratios.append(f"{p50 / pct(twin.samples, 50):.2f}x" if twin and twin.samples else "-")
        cells = [ms(pct(run.samples, 50)), ms(pct(run.samples, 95)), ms(max(run.samples)), *ratios]
        print(f"| {label_of(run)} | " + " | ".join(cells) + " |")
        if isinstance(run, FloorRun) and run.idle_twin is not None:
            idle = run.idle_twin.samples
            cells = [ms(pct(idle, 50)), ms(pct(idle, 95)), ms(max(idle)), "-", "-"]
            print(f"| {label_of(run.idle_twin)} | " + " | ".join(cells) + " |")
    if "queue" in by_mode and "topic" in by_mode:
        gap = pct(by_mode["topic"].samples, 50) - pct(by_mode["queue"].samples, 50)
        print(f"\ntopic mode (1 replica) - queue mode at p50: {gap * 1000:+.0f} ms", end="")
        floors = [by_mode.get(f"floor-{mode}") for mode in ("topic", "queue")]
        if all(isinstance(floor, FloorRun) and floor.samples for floor in floors):
            own = pct(floors[0].samples, 50) - pct(floors[1].samples, 50)  # type: ignore[union-attr]
            print(f" (the floors' own S3 -> SNS -> SQS - S3 -> SQS, under the same polling: {own * 1000:+.0f} ms)")
        else:
            print()
    if "polling" in by_mode and "queue" in by_mode:
        ratio = pct(by_mode["polling"].samples, 50) / pct(by_mode["queue"].samples, 50)
        print(f"events (queue mode) are {ratio:.0f}x faster than polling at p50")
    print_stages(runs)


def by_mode_order(run: LatencyRun) -> int:
    return LATENCY_MODES.index(run.mode)


def label_of(run: LatencyRun) -> str:
    if isinstance(run, FloorRun):
        return LABELS[run.mode] + (", the bench polling a replica meanwhile" if run.polled else ", nothing polled")
    return LABELS[run.mode]


def print_stages(runs: list[LatencyRun]) -> None:
    """Where the time goes: p50 per stage, ours from the agent's metrics, the floors' as they timed them."""
    in_order = sorted(runs, key=by_mode_order)  # without the idle twins: each follows its floor
    with_twins = [r for run in in_order for r in (run, getattr(run, "idle_twin", None)) if r is not None]
    staged = [run for run in with_twins if run.stages]
    if staged:
        print("\n**Where the time goes** (p50 per stage, from the agent's own `reloader_reload_stage_seconds`;")
        print("the first answer: the bench's first answer from the new version minus the agent's swap;")
        print("the floors' own stages as they timed them)\n")
        print("| mode | " + " | ".join(STAGES.values()) + " | sum of p50s |")
        print("|---|" + "---|" * (len(STAGES) + 1))
        for run in staged:
            medians = {stage: statistics.median(run.stages[stage]) for stage in STAGES if run.stages.get(stage)}
            cells = [f"{medians[stage] * 1000:.1f}" if stage in medians else "-" for stage in STAGES]
            total = sum(medians.values()) * 1000
            print(f"| {label_of(run)} | " + " | ".join(cells) + f" | {total:.1f} |")
        print(
            "\n(ms; S3 event time -> message received -> reconcile started -> listed -> downloaded -> "
            "loaded -> swapped -> first answer)"
        )


class LatencyRun:
    """One mode of the latency table: `reload()` writes a new version and records how long it took."""

    def __init__(self, mode: str, s3: Any, bucket: str) -> None:
        self.mode = mode
        self.floor_mode = FLOOR_OF.get(mode)
        self.s3 = s3
        self.bucket = bucket
        self.version = 1
        self.samples: list[float] = []
        self.stages: dict[str, list[float]] = {}

    def write_version(self) -> float:
        """Upload the next version (model, then marker); return its tag. Timing starts when this returns."""
        self.version += 1
        tag = float(self.version)
        self.s3.put_object(Bucket=self.bucket, Key=f"m/{self.version}/model.pkl", Body=tagged_model(tag))
        self.s3.put_object(Bucket=self.bucket, Key=f"m/{self.version}/{MARKER}", Body=b"")
        return tag

    def reload(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class AgentRun(LatencyRun):
    """`reloader serve` replicas, measured from outside by polling their HTTP API."""

    def __init__(self, mode: str, s3: Any, bucket: str, servers: list[Server]) -> None:
        super().__init__(mode, s3, bucket)
        self.servers = servers

    def reload(self) -> None:
        before = [stage_totals(server) for server in self.servers]
        tag = self.write_version()
        answered = times_until_served(self.servers, tag)
        for server, previous, (seconds, answered_at) in zip(self.servers, before, answered, strict=True):
            self.samples.append(seconds)
            after = stage_totals(server)
            for stage, (count, total) in after.items():
                done = count - previous.get(stage, (0.0, 0.0))[0]
                if done >= 1:
                    self.stages.setdefault(stage, []).append((total - previous.get(stage, (0.0, 0.0))[1]) / done)
            loaded_at = next(iter(server.models().values()))["versions"][str(self.version)]["loaded_at"]
            swap = self.stages["swap"][-1] if "swap" in after else 0.0
            self.stages.setdefault("answer", []).append(max(0.0, answered_at - loaded_at - swap))

    def close(self) -> None:
        for server in self.servers:
            server.stop()


class FloorRun(LatencyRun):
    """The floor: what a bare boto3 client needs for the same work, with its long poll in flight like ours.

    Receive the marker's event from a queue, one LIST of the prefix the agent lists (the model's),
    then GET the version's objects (the marker excepted, as the agent does) in parallel, into memory.
    Its clients are made as the agent makes its own (agent.boundaries.aws.client: the same timestamp
    parser; botocore's own costs about 0.1 ms per object listed, which would slow the floor alone).
    While it waits, the bench polls `polled` (its mode's replica, idle meanwhile) as fast as it
    answers, as it does while ours reloads, so LocalStack works on a host as loaded as during ours;
    its twin (`idle_twin`: its own bucket and queue, so both list as many versions as ours) polls nothing.
    """

    polled: Server | None = None  # set by the bench once the agent mode this is the floor of has started
    idle_twin: FloorRun | None = None  # the same floor with nothing polled

    def __init__(self, mode: str, url: str, bucket: str, queue_url: str, prefix: str) -> None:
        super().__init__(mode, aws_client("s3", endpoint_url=url), bucket)
        self.sqs = aws_client("sqs", endpoint_url=url)
        self.queue_url = queue_url
        self.prefix = prefix
        self.gets = ThreadPoolExecutor(10)
        self.done: dict[str, float] = {}
        self.arrived = threading.Condition()
        self.stopping = threading.Event()
        self.receipts: list[str] = []
        self.receiver = threading.Thread(target=self._receive, daemon=True)
        self.receiver.start()

    def _receive(self) -> None:
        while not self.stopping.is_set():
            response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=20)
            received = time.time()
            for message in response.get("Messages", ()):
                self.receipts.append(message["ReceiptHandle"])
                for record in json.loads(message["Body"]).get("Records", ()):
                    key = record["s3"]["object"]["key"]
                    if key.endswith("/" + MARKER):
                        self._fetch(key[: -len(MARKER)], event_time(record["eventTime"]), received)

    def _fetch(self, version_prefix: str, event: float, received: float) -> None:
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix)
        listed = time.time()
        keys = [
            item["Key"]
            for item in listing.get("Contents", ())
            if item["Key"].startswith(version_prefix) and not item["Key"].endswith("/" + MARKER)
        ]
        bodies = list(self.gets.map(lambda key: self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read(), keys))
        assert bodies, f"nothing listed under {version_prefix}"
        downloaded = time.time()
        for stage, start, end in (
            ("delivery", event, received),
            ("list", received, listed),
            ("download", listed, downloaded),
        ):
            self.stages.setdefault(stage, []).append(max(0.0, end - start))
        with self.arrived:
            self.done[version_prefix] = time.perf_counter()
            self.arrived.notify_all()

    def reload(self) -> None:
        self.write_version()
        started = time.perf_counter()
        prefix = f"m/{self.version}/"
        stop = threading.Event()
        poller = threading.Thread(target=self._poll, args=(stop,), daemon=True) if self.polled else None
        if poller is not None:
            poller.start()
        try:
            with self.arrived:
                if not self.arrived.wait_for(lambda: prefix in self.done, timeout=60):
                    raise TimeoutError(f"the floor client saw no event for {prefix} within 60 s")
        finally:
            stop.set()
            if poller is not None:
                poller.join()
        self.samples.append(self.done[prefix] - started)
        receipts, self.receipts = self.receipts, []
        for start in range(0, len(receipts), 10):
            entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts[start : start + 10])]
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)

    def _poll(self, stop: threading.Event) -> None:
        assert self.polled is not None
        with Poller(self.polled.url) as poller:
            while not stop.is_set():
                poller.prediction()

    def close(self) -> None:
        self.stopping.set()  # the long poll in flight ends on its own (a daemon thread)
        self.gets.shutdown()


class Poller:
    """`POST /` on one keep-alive connection, as lean as the standard library makes it.

    The poll's own CPU is the observer's cost, not ours, and the 2-core host (LocalStack, the bench,
    the replica) lacks it elsewhere: httpx used 2.6x the client CPU of http.client per request here
    (1.7 against 0.65 ms, the same answer, 2026-12-02).
    """

    BODY = b"{}"

    def __init__(self, url: str, path: str = "/") -> None:
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1", url  # loopback only
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self._path = path
        self._headers = {"Content-Type": "application/json"}

    def __enter__(self) -> Poller:
        return self

    def __exit__(self, *_: object) -> None:
        self._connection.close()

    def prediction(self) -> Any:
        """The answer's `prediction`, or None when the answer is not a 200."""
        self._connection.request("POST", self._path, self.BODY, self._headers)
        response = self._connection.getresponse()
        body = response.read()
        return json.loads(body).get("prediction") if response.status == 200 else None


def times_until_served(servers: list[Server], tag: float, timeout: float = 60) -> list[tuple[float, float]]:
    """Per server, (seconds from now, wall time) of its first answer with `tag`, polling each as fast as it answers."""
    pollers = [Poller(server.url) for server in servers]
    started = time.perf_counter()
    deadline = started + timeout
    answered: dict[int, tuple[float, float]] = {}
    try:
        while len(answered) < len(servers):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"version with tag {tag} not served within {timeout} s")
            for index, poller in enumerate(pollers):
                if index not in answered and poller.prediction() == tag:
                    answered[index] = (time.perf_counter() - started, time.time())
    finally:
        for poller in pollers:
            poller.__exit__()
    return [answered[index] for index in range(len(servers))]


def stage_totals(server: Server) -> dict[str, tuple[float, float]]:
    """Per stage, (count, seconds) the agent has recorded in reloader_reload_stage_seconds so far."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(server.http.get("/metrics").text):
        for sample in family.samples:
            if sample.name.startswith("reloader_reload_stage_seconds_"):
                entry = totals.setdefault(sample.labels["stage"], [0.0, 0.0])
                if sample.name.endswith("_count"):
                    entry[0] = sample.value
                elif sample.name.endswith("_sum"):
                    entry[1] = sample.value
    return {stage: (count, total) for stage, (count, total) in totals.items()}


def subscribed_queue(sqs: Any, sns: Any, topic_arn: str) -> str:
    """A queue subscribed to the topic with raw delivery, as each replica's own queue is; returns its URL."""
    name = f"floor-{uuid.uuid4().hex[:10]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return str(url)


def event_time(text: str) -> float:
    """An S3 event record's eventTime (ISO 8601, UTC) in seconds since the epoch."""
    return datetime.fromisoformat(text).timestamp()


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min), {fifteen:.2f} (15 min)"


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
