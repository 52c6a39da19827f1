"""The threads a replica runs at idle, by kind, in poll, queue and topic mode (docs/architecture.md lists them).

In-process (a `Service` as `reloader serve` builds it, on LocalStack), since only the process itself
can enumerate its threads; the kinds are thread names without their pool numbers.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import yaml

from agent.boundaries.spec_file import load_spec
from agent.cli import Service
from tests.support import Models, api_spec, notify_queue, notify_topic, wait_until

pytestmark = pytest.mark.localstack

# The kinds docs/architecture.md names; `ThreadPoolExecutor` is s3transfer's download pool (one
# TransferManager is kept for every download, so its threads are made once), `s3-get` our plain GETs' pool,
# `load` the caching's load pool (none here: no cache), `s3-list` the LIST pages asked ahead (none for one page).
DOCUMENTED = {
    "MainThread",
    "scheduler",
    "timed",
    "reconcile",
    "load",
    "sqs-receive",
    "sqs-ack",
    "ThreadPoolExecutor",
    "s3-get",
    "s3-list",
}


@pytest.mark.parametrize("mode", ["poll", "queue", "topic"])
def test_an_idle_replica_runs_only_the_documented_threads(
    mode, tmp_path: Path, s3_client, sqs_client, sns_client, bucket
):
    # GIVEN one model in S3 and a replica in `mode`
    Models(s3_client, bucket).put_version("iris", 1, 1.0)
    reloading: dict[str, object] = {"interval": 3600}
    if mode == "queue":
        reloading["queue_url"] = notify_queue(s3_client, sqs_client, bucket)
    elif mode == "topic":
        reloading["topic_arn"] = notify_topic(s3_client, sns_client, bucket)
        reloading["replica_id"] = f"threads-{bucket}"
    spec = tmp_path / "cortex.yaml"
    spec.write_text(yaml.safe_dump([api_spec({"path": f"s3://{bucket}/iris/"}, reloading=reloading)]))
    before = set(threading.enumerate())
    service = Service(load_spec(spec))
    service.start()
    try:
        # WHEN it is ready and idle
        assert service.agent is not None and service.agent.wait_ready(30)
        wait_until(lambda: service.registry.loaded("test-api"), what="version 1 loaded")
        mine = {t.name for t in set(threading.enumerate()) - before}
        found = {re.sub(r"([_-]\d+)+$", "", name) for name in mine} | {"MainThread"}
        print(f"\n{mode} mode, thread kinds at idle: {sorted(found)} ({len(mine)} threads)")
        # THEN every thread it started is of a documented kind
        assert found <= DOCUMENTED, found - DOCUMENTED
    finally:
        service.stop()
    # AND a stopped replica leaves none of its threads behind but the idle pool threads ending
    wait_until(
        lambda: not {t for t in set(threading.enumerate()) - before if t.name.startswith(("scheduler", "sqs-"))},
        timeout=30,
        what="the agent's threads ended",
    )
