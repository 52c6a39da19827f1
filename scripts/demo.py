"""The demo behind `make demo`: a scikit-learn model served from LocalStack S3 and reloaded without a restart.

1. start LocalStack (unless one answers already), create a bucket whose S3 notifications go to an SQS queue;
2. train an iris classifier (the dataset ships inside scikit-learn) and push it as version 1;
3. `reloader serve examples/iris/cortex.yaml` on that queue (RELOADER_QUEUE_URL) and ask it for a prediction;
4. push version 2 and show the API answering from it, with the time it took after the push;
5. stop everything it started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "iris"
BUCKET = "reloader-demo"
PORT = int(os.environ.get("DEMO_PORT", "8888"))
URL = f"http://127.0.0.1:{PORT}"
FLOWER = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}


def main() -> int:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    endpoint = os.environ.setdefault("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    started_localstack = not _answers(f"{endpoint}/_localstack/health")
    if started_localstack:
        _run(ROOT / "scripts" / "localstack.sh", "start")
    server = None
    try:
        s3 = boto3.client("s3")
        if BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
            s3.create_bucket(Bucket=BUCKET)
        queue_url = _notified_queue(s3, boto3.client("sqs"))
        work = Path(tempfile.mkdtemp(prefix="reloader-demo-"))
        _step("train and push version 1")
        _push(work, 1, estimators=5)
        _step("serve examples/iris/cortex.yaml")
        server = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "serve", str(EXAMPLE / "cortex.yaml"), "--port", str(PORT)],
            env={**os.environ, "RELOADER_QUEUE_URL": queue_url},
        )
        _wait(lambda: _answers(f"{URL}/readyz"), 60, "the API to be ready")
        print(f"POST {URL}/ {json.dumps(FLOWER)}\n  -> {_predict()}")
        _step("train and push version 2, while the API keeps serving")
        _push(work, 2, estimators=50)
        pushed = time.monotonic()
        answer = _wait(lambda: (a := _predict())["version"] == 2 and a, 60, "version 2 to serve")
        took = (time.monotonic() - pushed) * 1000
        print(f"  -> {answer}  (served {took:.0f} ms after the push finished: from its S3 event, no restart)")
        _step("reloader status")
        _run(sys.executable, "-m", "agent.cli", "status", "--url", URL)
        print("\ndemo finished: version 1 served, version 2 pushed and served live.")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if started_localstack:
            _run(ROOT / "scripts" / "localstack.sh", "stop")


def _notified_queue(s3, sqs) -> str:  # type: ignore[no-untyped-def]
    """An SQS queue (with a dead-letter queue) receiving the bucket's object created/removed events."""
    dead = sqs.create_queue(QueueName="reloader-demo-events-dlq")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 5})
    url = sqs.create_queue(QueueName="reloader-demo-events", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "models/"}]}}}
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": [rule]})
    sqs.purge_queue(QueueUrl=url)  # events of an earlier demo run are not this run's
    return str(url)


def _push(work: Path, version: int, estimators: int) -> None:
    folder = work / str(version)
    _run(sys.executable, EXAMPLE / "train.py", folder, "--version", str(version), "--estimators", str(estimators))
    _run(sys.executable, "-m", "agent.cli", "push", folder, f"s3://{BUCKET}/models/iris/", "--version", str(version))


def _predict() -> dict[str, object]:
    request = urllib.request.Request(URL, json.dumps(FLOWER).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.load(response))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"demo: timed out waiting for {what}")


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _run(*command: object) -> None:
    subprocess.run([str(part) for part in command], check=True)


if __name__ == "__main__":
    sys.exit(main())
