"""`processes_per_replica: 2`: one agent and two serving processes behind one port, on LocalStack, through HTTP.

Each answer of the test handler names its process (`pid`) and repeats its version's sidecar file
(`TAG`), which must agree with the prediction: a mixed version would show. Requests open a new
connection each, since a keep-alive connection stays with the process that accepted it.
"""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Any

import httpx
import pytest

from tests.fakes import Traffic
from tests.support import Models, api_spec, notify_queue, notify_topic, wait_until

pytestmark = pytest.mark.localstack


def put(models: Models, version: int, tag: float, prefix: str = "m") -> None:
    models.put_version(prefix, version, tag=tag, marker="_READY", extra={"TAG": str(tag).encode()})


def answer(url: str, **params: Any) -> dict[str, Any]:
    """One request on a connection of its own (so that either process may accept it)."""
    response = httpx.post(f"{url}/", json={}, params=params, timeout=30, headers={"Connection": "close"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def pids_answering(url: str, requests: int = 40) -> set[int]:
    return {answer(url)["pid"] for _ in range(requests)}


def two_pids(url: str) -> set[int] | None:
    """The two processes answering, once both answer."""
    pids = pids_answering(url)
    return pids if len(pids) == 2 else None


def processes_spec(bucket: str, reloading: dict[str, Any] | None = None, **handler: Any) -> dict[str, Any]:
    handler = {"processes_per_replica": 2, "threads_per_process": 2, **handler}
    return api_spec({"path": f"s3://{bucket}/m"}, reloading={"ready_marker": "_READY", **(reloading or {})}, **handler)


def serving_pids(server: Any) -> set[int]:
    """The pids of the agent's child processes (the serving processes), from /proc."""
    with open(f"/proc/{server.process.pid}/task/{server.process.pid}/children") as children:
        return {int(pid) for pid in children.read().split()}


def test_two_processes_answer_and_every_reload_reaches_both_without_a_mixed_version(serve, s3_client, bucket):
    # GIVEN version 1, served by two processes
    models = Models(s3_client, bucket)
    put(models, 1, 1.0)
    server = serve.start(serve.spec(processes_spec(bucket)))
    # THEN answers come from two different processes, each a child of `reloader serve`
    pids = wait_until(lambda: two_pids(server.url), what="two processes")
    assert pids == serving_pids(server)
    status = server.version("test-api")["versions"]["1"]
    assert {number: state["state"] for number, state in status["processes"].items()} == {"1": "ready", "2": "ready"}

    # WHEN 8 new versions and in-place updates arrive under 6 client threads
    def consistent(result: Any) -> bool:
        return result.error is None and result.value["prediction"] == result.value["sidecar"]

    with Traffic.calling(lambda _: answer(server.url), range(6)) as traffic:
        for step in range(2, 10):
            version, tag = (step, float(step)) if step % 2 == 0 else (step - 1, step - 0.5)  # odd: in place
            put(models, version, tag)
            # THEN each reaches both processes: every process answers with it
            wait_until(
                lambda tag=tag: (
                    {a["pid"] for a in [answer(server.url) for _ in range(30)] if a["prediction"] == tag} == pids
                ),
                timeout=30,
                what=f"tag {tag} in both processes",
            )
    # THEN no request failed and none saw a mixed version
    assert traffic.answers and all(consistent(result) for result in traffic.answers), [
        result for result in traffic.answers if not consistent(result)
    ][:3]
    assert {result.value["pid"] for result in traffic.answers} == pids


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples with these labels in a Prometheus exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            sample, value = line.rsplit(" ", 1)
            if sample.split("{")[0] == name and all(f'{k}="{v}"' in sample for k, v in labels.items()):
                total += float(value)
    return total


def s3_calls(server: Any) -> tuple[float, float]:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return metric(text, "reloader_s3_requests_total", operation="ListObjectsV2"), metric(
        text, "reloader_s3_requests_total", operation="GetObject"
    )


def test_serving_processes_make_no_aws_calls_and_the_agent_makes_those_one_process_made(
    serve, s3_client, sqs_client, bucket
):
    # GIVEN the same API served by one process, then by two, each in queue mode with no periodic scan
    calls = {}
    for processes in (1, 2):
        models = Models(s3_client, f"{bucket}")
        prefix = f"m{processes}"
        put(models, 1, 1.0, prefix)
        queue = notify_queue(s3_client, sqs_client, bucket, prefix=f"{prefix}/")
        spec = api_spec(
            {"path": f"s3://{bucket}/{prefix}"},
            reloading={"ready_marker": "_READY", "queue_url": queue, "interval": 3600},
            processes_per_replica=processes,
        )
        server = serve.start(serve.spec(spec, name=f"p{processes}.yaml"))
        before = s3_calls(server)
        # WHEN a new version is pushed
        put(models, 2, 2.0, prefix)
        url = server.url
        wait_until(lambda url=url: all(answer(url)["prediction"] == 2.0 for _ in range(20)), what="every answer v2")
        after = s3_calls(server)
        calls[processes] = (after[0] - before[0], after[1] - before[1])
        # THEN no serving process ever imported an AWS SDK: it cannot make an AWS call
        if processes == 2:
            modules = [
                httpx.get(f"{server.url}/", params={"modules": 1}, headers={"Connection": "close"}).json()
                for _ in range(30)
            ]
            assert {m["pid"] for m in modules} == serving_pids(server)
            assert not any(m["botocore"] for m in modules), modules
            # AND each knows its number, and got its share of the cores for BLAS / OpenMP threads
            assert {m["RELOADER_PROCESS"] for m in modules} == {"1", "2"}
            share = str(max(1, len(os.sched_getaffinity(0)) // 2))
            assert {m["OMP_NUM_THREADS"] for m in modules} == {share}, modules
        server.stop()
    # THEN the agent of two processes made the LISTs and GETs one process made for the same reload
    assert calls[2] == calls[1], calls
    assert calls[1][0] >= 1 and calls[1][1] >= 2, calls


def test_a_killed_serving_process_is_replaced_and_the_other_keeps_answering(serve, s3_client, bucket):
    # GIVEN two processes serving version 1
    models = Models(s3_client, bucket)
    put(models, 1, 1.0)
    server = serve.start(serve.spec(processes_spec(bucket)))
    pids = wait_until(lambda: two_pids(server.url), what="two processes")
    victim, survivor = sorted(pids)
    # WHEN one is killed with SIGKILL, and version 2 arrives while it is down
    with Traffic.calling(lambda _: answer(server.url), range(3)) as traffic:
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        put(models, 2, 2.0)
        # THEN a replacement serves, with the current version
        wait_until(
            lambda: (p := pids_answering(server.url)) and len(p) == 2 and victim not in p, timeout=30, what="replaced"
        )
        wait_until(lambda: all(answer(server.url)["prediction"] == 2.0 for _ in range(20)), what="v2 everywhere")
    # THEN new requests kept being answered: only those in flight on the killed process may have failed
    late = [a for a in traffic.answers if a.error is not None and a.start > killed_at + 1.0]
    assert not late, late[:3]
    assert any(a.value is not None and a.value["pid"] == survivor for a in traffic.answers)
    assert re.search(rf"serving process \d \(pid {victim}\) was killed by SIGKILL", server.log()), server.log()


def test_a_handler_that_cannot_start_is_retried_with_backoff_and_said_in_models(serve, s3_client, bucket, tmp_path):
    # GIVEN a handler whose __init__ raises in serving process 2 (each process is told its number)
    handler = tmp_path / "broken.py"
    handler.write_text(
        "import os\n"
        "class Handler:\n"
        "    def __init__(self, config, model_client):\n"
        "        if os.environ['RELOADER_PROCESS'] == '2':\n"
        "            raise RuntimeError('no GPU here')\n"
        "    def load_model(self, path):\n"
        "        return path\n"
        "    def handle_post(self, payload):\n"
        "        return {'pid': os.getpid()}\n"
    )
    models = Models(s3_client, bucket)
    put(models, 1, 1.0)
    spec = processes_spec(bucket)
    spec["handler"]["path"] = str(handler)
    server = serve.start(serve.spec(spec), wait_ready=False)
    # THEN process 2 is started again, later each time, and the reason is logged
    wait_until(lambda: server.log().count("starting it again") >= 3, timeout=30, what="three restarts")
    delays = [float(d) for d in re.findall(r"serving process 2 .*starting it again in ([\d.]+) s", server.log())]
    assert delays == sorted(delays) and delays[-1] > delays[0], delays
    assert "RuntimeError: no GPU here" in server.log()
    # THEN process 1 serves, and says in /models and /readyz why the replica is not ready
    status = wait_until(lambda: server.version("test-api")["versions"]["1"]["processes"], what="/models")
    assert status["1"]["state"] == "ready"
    assert status["2"]["state"] in ("down", "starting") and "no GPU here" in status["2"]["error"], status
    readyz = httpx.get(f"{server.url}/readyz")
    assert readyz.status_code == 503 and "serving process 2 is" in readyz.text, readyz.text
    assert "no GPU here" in readyz.text


@pytest.mark.parametrize("mode", ["queue", "topic"])
def test_sigterm_drains_every_process_then_deletes_the_queue(serve, s3_client, sqs_client, sns_client, bucket, mode):
    # GIVEN two processes in topic mode, serving slow requests from several clients
    models = Models(s3_client, bucket)
    put(models, 1, 1.0)
    reloading: dict[str, Any] = {"shutdown_drain": 1}
    prefix = f"pp{bucket[-8:]}"
    if mode == "queue":
        reloading["queue_url"] = notify_queue(s3_client, sqs_client, bucket)
    else:
        reloading |= {"topic_arn": notify_topic(s3_client, sns_client, bucket), "queue_prefix": prefix}
    server = serve.start(serve.spec(processes_spec(bucket, reloading)))
    wait_until(lambda: len(pids_answering(server.url)) == 2, what="two processes")
    if mode == "topic":
        wait_until(lambda: _queues(sqs_client, prefix), what="the replica's queue")
    with Traffic.calling(lambda _: answer(server.url, slow="0.3"), range(4)) as traffic:
        # WHEN the replica gets SIGTERM
        stopped = time.time()
        server.process.send_signal(signal.SIGTERM)
        # THEN /readyz says so at once, in whichever process answers
        wait_until(lambda: httpx.get(f"{server.url}/readyz").status_code == 503, timeout=5, what="unready")
        server.process.wait(timeout=30)
    # THEN every request sent before the drain ended was answered
    early = [a for a in traffic.answers if a.start < stopped + 0.5]
    assert early and all(a.error is None for a in early), [a for a in early if a.error is not None][:3]
    assert server.process.returncode == -signal.SIGTERM, server.log()
    if mode == "topic":  # THEN the replica's queue is gone
        assert not _queues(sqs_client, prefix)


def _queues(sqs_client: Any, prefix: str) -> list[str]:
    return list(sqs_client.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []))


def test_metrics_are_one_exposition_for_the_replica(serve, s3_client, bucket):
    # GIVEN two processes, and 30 requests on new connections (so both answer some)
    from prometheus_client.parser import text_string_to_metric_families

    models = Models(s3_client, bucket)
    put(models, 1, 1.0)
    server = serve.start(serve.spec(processes_spec(bucket)))
    pids = wait_until(lambda: two_pids(server.url), what="two processes")
    before = [_requests(server) for _ in range(6)]
    answered = {answer(server.url)["pid"] for _ in range(30)}
    # WHEN /metrics is scraped, from whichever process accepts the connection
    scrapes = [httpx.get(f"{server.url}/metrics", headers={"Connection": "close"}).text for _ in range(6)]
    # THEN every scrape is one valid exposition (each family once) holding the agent's metrics and
    # the requests of both processes, summed
    for text in scrapes:
        families = [family.name for family in text_string_to_metric_families(text)]
        assert len(families) == len(set(families)), sorted(families)
        assert "reloader_s3_requests" in families and "reloader_ready" in families
        assert metric(text, "reloader_http_request_duration_seconds_count", status_code="200") >= max(before) + 30
        assert metric(text, "reloader_ready") == 1
        assert metric(text, "reloader_serving_process_up") == 2
    assert answered == pids


def _requests(server: Any) -> float:
    text = httpx.get(f"{server.url}/metrics", headers={"Connection": "close"}).text
    return metric(text, "reloader_http_request_duration_seconds_count", status_code="200")


def test_a_version_one_process_cannot_load_serves_in_none_and_the_previous_one_keeps_serving(serve, s3_client, bucket):
    # GIVEN version 1 served by two processes
    models = Models(s3_client, bucket)
    put(models, 1, 1.0)
    server = serve.start(serve.spec(processes_spec(bucket, {"retry_backoff": 60})))
    pids = wait_until(lambda: two_pids(server.url), what="two processes")
    # WHEN version 2 arrives, and its load_model raises in process 2 only
    models.put_version("m", 2, tag=2.0, marker="_READY", extra={"TAG": b"2.0", "FAIL_IN_PROCESS": b"2"})
    status = wait_until(
        lambda: (v := server.version("test-api")["versions"].get("2")) and v["state"] == "failed" and v,
        what="version 2 failed",
    )
    # THEN the version failed for the replica, naming the process and the error, and process 1, which
    # had loaded it, dropped it again: every answer, from either process, is still version 1's
    assert "in serving process 2" in status["error"] and "broken in process 2" in status["error"], status
    assert status["processes"]["2"]["state"] == "failed"
    answers = [answer(server.url) for _ in range(30)]
    assert {a["pid"] for a in answers} == pids
    assert {a["prediction"] for a in answers} == {1.0}
    assert server.version("test-api")["latest"] == 1


def test_with_caching_two_processes_asking_for_one_uncached_entry_cause_one_download(serve, s3_client, bucket):
    # GIVEN 6 models in `dir` mode, cache_size 2, disk_cache_size 4, two processes of 4 threads
    models = Models(s3_client, bucket)
    for number in range(6):
        models.put_version(f"zoo/m{number}", 1, tag=float(number), extra={"SLOW": b"0.5"})
    spec = api_spec(
        {"dir": f"s3://{bucket}/zoo", "cache_size": 2, "disk_cache_size": 4},
        processes_per_replica=2,
        threads_per_process=4,
    )
    server = serve.start(serve.spec(spec))
    pids = wait_until(lambda: two_pids_of(server.url, "m0"), what="two processes")
    gets = s3_calls(server)[1]
    # WHEN 8 requests from both processes ask at once for an entry no process holds
    with Traffic.calling(lambda _: answer(server.url, model="m3"), range(8)) as traffic:
        wait_until(lambda: len({a.value["pid"] for a in traffic.answers if a.value}) == 2, what="both answered")
    # THEN each answered with it, it was downloaded once (SLOW and model.pkl), and each process loaded it once
    assert not traffic.failures() and {a.value["prediction"] for a in traffic.answers} == {3.0}
    assert s3_calls(server)[1] - gets == 2
    loads = {}
    for _ in range(40):
        reply = httpx.get(f"{server.url}/", params={"stats": 1}, headers={"Connection": "close"}).json()
        loads[reply["pid"]] = reply
    assert set(loads) == pids
    # AND no process holds more than cache_size entries, however many models were asked for
    for name in ("m1", "m2", "m4", "m5", "m3"):
        assert answer(server.url, model=name)["prediction"] == float(name[1:])
    for reply in loads.values():
        assert reply["loads"]["m3"] == 1, loads
    for _ in range(40):
        reply = httpx.get(f"{server.url}/", params={"stats": 1}, headers={"Connection": "close"}).json()
        assert reply["alive"] <= 2, reply

    # AND the processes' hits reach the replica's metrics (told to the agent once a second)
    def hits() -> float:
        answer(server.url, model="m3")
        text = httpx.get(f"{server.url}/metrics", headers={"Connection": "close"}).text
        return metric(text, "reloader_cache_requests_total", result="hit")

    wait_until(lambda: hits() >= 2, timeout=10, interval=0.5, what="hits counted")


def two_pids_of(url: str, model: str) -> set[int] | None:
    pids = {answer(url, model=model)["pid"] for _ in range(30)}
    return pids if len(pids) == 2 else None


def test_when_the_agent_dies_the_serving_processes_exit(serve, s3_client, bucket):
    # GIVEN two serving processes
    models = Models(s3_client, bucket)
    put(models, 1, 1.0)
    server = serve.start(serve.spec(processes_spec(bucket)))
    wait_until(lambda: len(serving_pids(server)) == 2, what="two children")
    children = serving_pids(server)
    # WHEN the agent is killed (an OOM kill, say)
    server.process.kill()
    server.process.wait()
    # THEN its serving processes exit too, rather than serve versions nothing updates any more: the
    # replica is gone, and its orchestrator starts it again
    wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") and not _zombie(pid) for pid in children), timeout=10)
    assert "the agent is gone; exiting" in server.log()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
