"""`reloader serve`, started as a user starts it (the console script), exits promptly when told to:
SIGTERM as Kubernetes sends it, SIGINT as Ctrl-C does, in every reloading mode, with every thread the
mode starts (scans, the SQS consumer, the heartbeat, S3 transfers) running when the signal comes."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support import Models, api_spec, notify_queue, notify_topic, prediction, wait_until

pytestmark = pytest.mark.localstack

# Far below anything a thread left running would cost: an SQS long poll is 20 s, `Server.stop` kills at 30 s.
PROMPTLY = 10.0


@pytest.mark.parametrize(
    ("mode", "sig"),
    [
        pytest.param("poll", signal.SIGTERM, id="poll-SIGTERM"),
        pytest.param("poll", signal.SIGINT, id="poll-SIGINT"),
        pytest.param("queue", signal.SIGTERM, id="queue-SIGTERM"),
        pytest.param("queue", signal.SIGINT, id="queue-SIGINT"),
        pytest.param("topic", signal.SIGTERM, id="topic-SIGTERM"),
        pytest.param("topic", signal.SIGINT, id="topic-SIGINT"),
    ],
)
def test_serve_exits_promptly_on_a_signal(serve, s3_client, sqs_client, sns_client, bucket, mode, sig):
    # GIVEN `reloader serve` serving a model from S3, in the given reloading mode, after a reload
    models = Models(s3_client, bucket)
    models.put_version("m", 1, tag=1.0)
    reloading: dict[str, object] = {"interval": 0.5}
    if mode == "queue":
        reloading["queue_url"] = notify_queue(s3_client, sqs_client, bucket)
    elif mode == "topic":
        reloading |= {"topic_arn": notify_topic(s3_client, sns_client, bucket), "queue_prefix": f"sd{bucket[-8:]}"}
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading=reloading)))
    models.put_version("m", 2, tag=2.0)
    wait_until(lambda: prediction(server) == 2.0, timeout=15, what="version 2 served")

    # WHEN it gets the signal
    started = time.monotonic()
    returncode = server.stop(sig)
    took = time.monotonic() - started

    # THEN the process has ended, promptly, by that signal (uvicorn shuts down, then re-raises it)
    assert took < PROMPTLY, f"exited {took:.1f} s after {sig.name}:\n{server.log()}"
    assert returncode == -sig, server.log()
