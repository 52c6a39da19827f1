"""Benchmark of multi-model caching (`cache_size` / `disk_cache_size`).

    make bench-cache                # or: .venv/bin/python -m bench.cache [--help]

Runs against a LocalStack of its own unless AWS_ENDPOINT_URL is set, with `reloader serve` as a real
process and small scikit-learn models (tests/handlers/tagged.py). Prints three tables:
1. start-up: a `dir` of N models (default 10,000) with cache_size 100: time from start to /readyz, peak RSS;
2. cold load of an uncached model in a bucket of 1,000 (request -> answer, over HTTP), with the S3
   LISTs it made (0: the load uses the index); and a cache hit's cost against a model loaded without
   caching, timed in-process around `get_model` (the host is too noisy to see a few % over HTTP);
3. a Zipf-distributed stream (s = 1.1) over 1,000 models with cache_size 50: hit ratio, p50 / p99, evictions/s;
4. (with the tensorflow extra: `.venv-tf/bin/python -m bench.cache --only tf`) cold predicts on the TF
   Serving stand-in: one alone, then several at once: wall time and config reloads sent.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import timeit
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

from bench.reload import endpoint, machine, ms, pct
from tests.support import ServeFactory, Server, api_spec, metric, tagged_model

MARKER = "_READY"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--startup-models", type=int, default=10_000, help="models for table 1 (default 10,000)")
    parser.add_argument("--startup-runs", type=int, default=3, help="starts per row of table 1 (default 3)")
    parser.add_argument("--models", type=int, default=1_000, help="models for tables 2 and 3 (default 1,000)")
    parser.add_argument("--cold-loads", type=int, default=60, help="cold loads timed in table 2 (default 60)")
    parser.add_argument("--stream", type=int, default=3_000, help="requests of the Zipf stream (default 3,000)")
    parser.add_argument("--only", choices=["startup", "cold", "zipf", "tf"], action="append", help="run only these")
    parser.add_argument("--tf-models", type=int, default=6, help="concurrent cold predicts in table 4 (default 6)")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    print(f"# model-reloader caching benchmark, {time.strftime('%Y-%m-%d %H:%M')} UTC on {machine()}")
    tables = args.only or ["startup", "cold", "zipf"]
    with endpoint() as url, tempfile.TemporaryDirectory(prefix="reloader-bench-cache-") as tmp:
        bench = CacheBench(url, Path(tmp))
        try:
            if "startup" in tables:
                bench.startup(args.startup_models, args.startup_runs)
            if "cold" in tables or "zipf" in tables:
                bucket = bench.bucket_of(args.models)
                if "cold" in tables:
                    bench.cold(bucket, args.models, args.cold_loads)
                    hit_cost()
                if "zipf" in tables:
                    bench.zipf(bucket, args.models, args.stream)
            if "tf" in tables:
                bench.tensorflow(args.tf_models, Path(tmp))
        finally:
            bench.serve.stop_all()


class CacheBench:
    def __init__(self, url: str, tmp: Path) -> None:
        self.s3 = boto3.client("s3", endpoint_url=url)
        self.serve = ServeFactory(tmp, url)

    def bucket_of(self, count: int) -> str:
        """A bucket with `count` models under zoo/, model-NNNNN predicting NNNNN, each with its marker."""
        bucket = f"bench-{uuid.uuid4().hex[:10]}"
        self.s3.create_bucket(Bucket=bucket)
        with ThreadPoolExecutor(32) as pool:
            for index in range(count):
                body = tagged_model(float(index))
                for key, data in (
                    (f"zoo/model-{index:05d}/1/model.pkl", body),
                    (f"zoo/model-{index:05d}/1/{MARKER}", b""),
                ):
                    pool.submit(self.s3.put_object, Bucket=bucket, Key=key, Body=data)
        return bucket

    def start(self, bucket: str, memory: int, disk: int) -> tuple[Server, float]:
        models = {"dir": f"s3://{bucket}/zoo", "cache_size": memory, "disk_cache_size": disk}
        reloading = {"ready_marker": MARKER, "interval": 3600, "settle": None}
        spec = self.serve.spec(api_spec(models, name="bench", reloading=reloading), name=f"{bucket}-{memory}.yaml")
        started = time.monotonic()
        server = self.serve.start(spec, ready_timeout=1800, ready_interval=0.02)  # start -> ready to 20 ms
        return server, time.monotonic() - started

    # -- 1. start-up -------------------------------------------------------------------------
    def startup(self, count: int, runs: int = 3) -> None:
        rows = []
        for size in (1, count):  # one model: what the process's own start costs
            bucket = self.bucket_of(size)
            readies = []
            for _ in range(runs):  # the host is shared: the median of a few starts, with their range
                server, ready = self.start(bucket, 100, 200)
                readies.append(ready)
                rss = peak_rss(server)
                known = len(server.models())
                loads = metric(server, "reloader_cold_load_seconds_count", phase="load")
                listing = metric(server, "reloader_s3_request_seconds_sum", operation="ListObjectsV2")
                server.stop()
            rows.append((size, sorted(readies), rss, known, loads, listing))
        print(f"\n## 1. Start-up: `dir` of {count:,} models, cache_size 100, disk_cache_size 200, {runs} starts each\n")
        print(
            "| models | start -> /readyz, median (range) | S3 LIST calls' time, last start (summed: pages overlap) "
            "| peak RSS | models in /models at ready | loaded at ready |"
        )
        print("|---|---|---|---|---|---|")
        for size, readies, rss, known, loads, listing in rows:
            spread = f"{readies[len(readies) // 2]:.1f} s ({readies[0]:.1f}-{readies[-1]:.1f})"
            print(f"| {size:,} | {spread} | {listing:.1f} s | {rss / 2**20:.0f} MiB | {known:,} | {loads:.0f} |")

    # -- 2. cold loads -----------------------------------------------------------------------
    def cold(self, bucket: str, count: int, loads: int) -> None:
        server, _ = self.start(bucket, 10, 20)
        chosen = random.Random(2).sample(range(count), loads)
        lists_before = metric(server, "reloader_s3_requests_total", operation="ListObjectsV2")
        samples = []
        for index in chosen:
            started = time.perf_counter()
            response = server.http.post("/", json={}, params={"model": f"model-{index:05d}"})
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200 and response.json()["prediction"] == float(index), response.text
        lists = metric(server, "reloader_s3_requests_total", operation="ListObjectsV2") - lists_before
        download = metric(server, "reloader_cold_load_seconds_sum", phase="download")
        load = metric(server, "reloader_cold_load_seconds_sum", phase="load")
        hits = []
        for index in chosen[-5:]:  # in the cache now (cache_size 10): the same request as a hit
            started = time.perf_counter()
            server.http.post("/", json={}, params={"model": f"model-{index:05d}"})
            hits.append(time.perf_counter() - started)
        server.stop()
        print(f"\n## 2. Cold load of an uncached model in a bucket of {count:,} (request -> answer, HTTP)\n")
        print("| cold loads | p50 | p95 | max | S3 LISTs made by them | mean download | mean load_model | a hit, p50 |")
        print("|---|---|---|---|---|---|---|---|")
        print(
            f"| {loads} | {ms(pct(samples, 50))} | {ms(pct(samples, 95))} | {ms(max(samples))} | {lists:.0f} "
            f"| {ms(download / loads)} | {ms(load / loads)} | {ms(pct(hits, 50))} |"
        )

    # -- 3. Zipf stream ----------------------------------------------------------------------
    def zipf(self, bucket: str, count: int, requests: int) -> None:
        server, _ = self.start(bucket, 50, 100)
        weights = [1 / (rank**1.1) for rank in range(1, count + 1)]
        ranks = list(range(count))
        random.Random(3).shuffle(ranks)  # popularity is not the name order
        stream = random.Random(4).choices(ranks, weights=weights, k=requests)
        samples = []
        evictions_before = metric(server, "reloader_cache_evictions_total", where="memory")
        started = time.monotonic()
        for index in stream:
            begun = time.perf_counter()
            response = server.http.post("/", json={}, params={"model": f"model-{index:05d}"})
            samples.append(time.perf_counter() - begun)
            assert response.status_code == 200 and response.json()["prediction"] == float(index), response.text
        elapsed = time.monotonic() - started
        hits = metric(server, "reloader_cache_requests_total", result="hit")
        misses = metric(server, "reloader_cache_requests_total", result="miss")
        evictions = metric(server, "reloader_cache_evictions_total", where="memory") - evictions_before
        server.stop()
        distinct = len(set(stream))
        print(f"\n## 3. Zipf stream (s = 1.1) over {count:,} models, cache_size 50, {requests:,} requests\n")
        print("| distinct models asked | hit ratio | p50 | p99 | evictions per second | requests per second |")
        print("|---|---|---|---|---|---|")
        print(
            f"| {distinct} | {hits / (hits + misses):.1%} | {ms(pct(samples, 50))} | {ms(pct(samples, 99))} "
            f"| {evictions / elapsed:.1f} | {requests / elapsed:.0f} |"
        )

    # -- 4. TensorFlow: concurrent cold predicts -----------------------------------------------
    def tensorflow(self, count: int, tmp: Path) -> None:
        from tests.tfserving.process import TFServingProcess
        from tests.tfserving.savedmodels import INPUT, SavedModels

        bucket = f"bench-{uuid.uuid4().hex[:10]}"
        self.s3.create_bucket(Bucket=bucket)
        saved = SavedModels(self.s3, bucket, tmp)
        for index in range(count + 1):
            saved.put(f"zoo/t{index}", 1, scale=float(index + 1))
        tfserving = TFServingProcess(tmp, load_delay=0.5)
        tfserving.start()
        try:
            models = {"dir": f"s3://{bucket}/zoo", "cache_size": count + 1, "disk_cache_size": count + 1}
            api = api_spec(models, name="bench-tf", reloading={"interval": 3600}, threads_per_process=count + 2)
            api["handler"].update(
                type="tensorflow", path=str(Path(__file__).parent.parent / "tests/handlers/tf_scaler.py")
            )
            api["handler"]["models"] = api["handler"].pop("multi_model_reloading")
            env = {**tfserving.env, "RELOADER_MODEL_DIR": str(tmp / "tf-models")}
            server = self.serve.start(self.serve.spec(api, name=f"{bucket}.yaml"), env=env, ready_timeout=300)

            def predict(index: int) -> None:
                response = server.http.post("/", json={"x": INPUT}, params={"model": f"t{index}"})
                assert response.status_code == 200, response.text

            rows = []
            for batch in ([0], list(range(1, count + 1))):
                configs = len(tfserving.configs())
                started = time.perf_counter()
                with ThreadPoolExecutor(len(batch)) as pool:
                    list(pool.map(predict, batch))
                rows.append((len(batch), time.perf_counter() - started, len(tfserving.configs()) - configs))
            server.stop()
        finally:
            tfserving.stop()
        print("\n## 4. TensorFlow handler: cold predicts on the TF Serving stand-in (each load takes 0.5 s there)\n")
        print("| cold predicts at once | wall time until all answered | config reloads sent |")
        print("|---|---|---|")
        for at_once, seconds, sent in rows:
            print(f"| {at_once} | {ms(seconds)} | {sent} |")


def hit_cost(calls: int = 200_000) -> None:
    """A cache hit's `get_model` against the registry's (no caching), in-process, best of 7 runs."""
    from agent.api.model_client import ModelClient
    from agent.boundaries.store import ModelStore
    from agent.domain.caching import CacheSizes
    from agent.domain.index import ModelState, Served, VersionEntry
    from agent.domain.versions import ObjectInfo, VersionListing
    from agent.engine.cached_models import CachedModels
    from agent.engine.hit_views import HitViews
    from agent.engine.index import Index
    from agent.engine.registry import Registry
    from agent.engine.residency import LruCache
    from agent.metrics import Metrics

    def build(caching: bool) -> ModelClient:
        registry = Registry()
        index = Index(registry, 0.0)
        metrics = Metrics()
        views = HitViews(registry, index.get, metrics.cache_hits)  # wired as Agent wires it
        index.listen(views.refresh)
        cache = LruCache(registry, ModelStore(Path(tempfile.gettempdir())), CacheSizes(100, 100), metrics, None, views)
        listing = VersionListing(1, (ObjectInfo("model.pkl", 1, "e", 0.0),), "fp1", "1/")
        index.publish("m", ModelState({1: VersionEntry(listing, 0.0)}, listed=True))
        served = Served(1, "fp1", Path("/m/1"), object(), 0.0)
        if caching:
            cache.swap_in("m", served)
            lookup: Any = CachedModels(registry, index, cache, _no_demand, metrics, 30.0, time.time)
        else:
            registry.swap_in("m", served)
            lookup = registry
        return ModelClient(lookup)

    plain, cached = build(False), build(True)
    timings = {}
    for name, client in (("without caching (registry)", plain), ("with caching, a hit", cached)):
        timings[name] = min(timeit.repeat(lambda c=client: c.get_model("m"), number=calls, repeat=7)) / calls
    estimator = _fitted()
    rows = [[5.1, 3.5, 1.4, 0.2]]
    predict = min(timeit.repeat(lambda: estimator.predict(rows), number=2_000, repeat=5)) / 2_000
    base, hit = timings.values()
    print(f"\nA cache hit's cost, in-process around `get_model` (best of 7 x {calls:,} calls):\n")
    print(
        "| get_model without caching | with caching, a hit | extra per call | extra vs get_model + a sklearn predict |"
    )
    print("|---|---|---|---|")
    print(
        f"| {base * 1e9:.0f} ns | {hit * 1e9:.0f} ns | {(hit - base) * 1e9:.0f} ns ({hit / base - 1:+.0%}) "
        f"| {(hit - base) / (base + predict):+.2%} (predict: {predict * 1e6:.0f} us) |"
    )


def _no_demand(model: str, request: Any) -> Any:
    raise AssertionError("a hit never asks for a load")


def _fitted() -> Any:
    import pickle

    return pickle.loads(tagged_model(1.0))


def peak_rss(server: Server) -> int:
    """The server process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    main()
