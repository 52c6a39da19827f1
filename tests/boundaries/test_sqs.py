"""The SQS boundary's receive call: long polling, batches of 10, the receive count asked for."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from agent.boundaries.sqs import Message, Queue

URL = "https://sqs.us-east-1.amazonaws.com/000000000000/q"


def test_receive_long_polls_for_batches_of_ten_with_their_receive_count():
    client = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response(
            "receive_message",
            {
                "Messages": [
                    {
                        "MessageId": "m1",
                        "ReceiptHandle": "r1",
                        "Body": "{}",
                        "Attributes": {"ApproximateReceiveCount": "3"},
                    }
                ]
            },
            expected_params={
                "QueueUrl": URL,
                "MaxNumberOfMessages": 10,
                "WaitTimeSeconds": 20,
                "VisibilityTimeout": 300,
                "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
            },
        )
        assert Queue(client, URL).receive(visibility_timeout=300) == [Message("m1", "r1", "{}", 3)]
        stub.assert_no_pending_responses()
