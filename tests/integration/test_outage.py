"""LocalStack stopped for 30 s and started again while the agent runs: serving never stops, and it converges."""

from __future__ import annotations

import time

import pytest

from tests.fakes import Traffic
from tests.support import S3_EVENTS, Models, api_spec, wait_until

pytestmark = pytest.mark.localstack

OUTAGE_SECONDS = 30


def provision(localstack, bucket: str) -> tuple[Models, str]:
    """Bucket, version 1 and a notified queue (LocalStack keeps no state across a restart)."""
    s3 = localstack.client("s3")
    s3.create_bucket(Bucket=bucket)
    models = Models(s3, bucket)
    models.put_version("m", 1, tag=1.0)
    sqs = localstack.client("sqs")
    queue_name = "outage-events"
    existing = sqs.list_queues(QueueNamePrefix=queue_name).get("QueueUrls", [])
    url = existing[0] if existing else None
    if url is None:
        url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": list(S3_EVENTS)}]},
        )
    return models, url


def test_serving_survives_an_outage_and_the_agent_converges(serve, private_localstack):
    # GIVEN an agent on its own LocalStack, in queue mode, serving version 1
    bucket = "outage-bucket"
    models, queue_url = provision(private_localstack, bucket)
    spec = serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading={"queue_url": queue_url, "interval": 3600}))
    server = serve.start(spec, env={"AWS_ENDPOINT_URL": private_localstack.endpoint})
    with Traffic.http(server.url, pause=0.05, timeout=10) as traffic:
        # WHEN LocalStack is stopped for 30 s and started again (empty: it keeps no state)
        private_localstack.stop()
        time.sleep(OUTAGE_SECONDS)  # the outage itself is the scenario
        answered_during_outage = len(traffic.answers)
        private_localstack.start()
        models, queue_url_again = provision(private_localstack, bucket)
        assert queue_url_again.rsplit("/", 1)[1] == queue_url.rsplit("/", 1)[1]

        # THEN the next upload after recovery is served, without a restart
        models.put_version("m", 2, tag=2.0)
        wait_until(lambda: server.post({}).json()["prediction"] == 2.0, timeout=90, what="version 2 after recovery")
    # and serving never stopped
    assert traffic.failures() == []
    assert answered_during_outage > OUTAGE_SECONDS * 5
    log = server.log()
    # the agent logged the outage once per state change, not once per retry
    assert 1 <= log.count("serving continues, retrying with backoff") <= 3, log
