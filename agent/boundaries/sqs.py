"""SQS: receive, delete and re-time messages of one queue; create, tag and delete agent-owned queues."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from agent.boundaries.aws import count_calls, error_code, translated
from agent.domain.errors import PermanentError


@dataclass(frozen=True)
class Message:
    id: str
    receipt: str
    body: str
    receive_count: int


class Queue:
    """One SQS queue, by URL."""

    def __init__(self, client: Any, url: str, on_request: Callable[[str, float], None] | None = None) -> None:
        self._client = client
        self.url = url
        if on_request is not None:
            count_calls(client, "sqs", on_request)

    def receive(self, wait_seconds: int = 20, visibility_timeout: int | None = None) -> list[Message]:
        """Long-poll for up to 10 messages."""
        arguments: dict[str, Any] = {
            "QueueUrl": self.url,
            "MaxNumberOfMessages": 10,
            "WaitTimeSeconds": wait_seconds,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        }
        if visibility_timeout is not None:
            arguments["VisibilityTimeout"] = visibility_timeout
        with translated(f"receiving from {self.url}"):
            response = self._client.receive_message(**arguments)
        return [
            Message(
                item["MessageId"],
                item["ReceiptHandle"],
                item.get("Body", ""),
                int(item.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            )
            for item in response.get("Messages", ())
        ]

    def delete(self, messages: Iterable[Message]) -> list[str]:
        """Delete messages (in batches of 10); return the ids SQS refused."""
        batch = list(messages)
        failed: list[str] = []
        for start in range(0, len(batch), 10):
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(batch[start : start + 10])]
            with translated(f"deleting messages from {self.url}"):
                response = self._client.delete_message_batch(QueueUrl=self.url, Entries=entries)
            failed += [batch[start + int(f["Id"])].id for f in response.get("Failed", ())]
        return failed

    def retry_in(self, message: Message, seconds: int) -> None:
        """Make a message visible again after `seconds` (it failed for a reason that may pass)."""
        with translated(f"changing a message's visibility on {self.url}"):
            self._client.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=message.receipt, VisibilityTimeout=seconds
            )

    def attributes(self, *names: str) -> dict[str, str]:
        with translated(f"reading the attributes of {self.url}"):
            response = self._client.get_queue_attributes(QueueUrl=self.url, AttributeNames=list(names))
        return dict(response.get("Attributes", {}))


class QueueTaken(PermanentError):
    """The queue this replica would create exists and is tagged as another replica's."""


class QueueAdmin:
    """Create, tag and delete the queues the agent owns (topic mode)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def create(
        self, name: str, attributes: Mapping[str, str], tags: Mapping[str, str], owner_tag: str | None = None
    ) -> tuple[str, str]:
        """Create (or adopt, if it exists) a queue; return its URL and ARN.

        With `owner_tag`, an existing queue whose tag of that name holds another value than
        `tags[owner_tag]` belongs to someone else: QueueTaken, and the queue is left untouched.
        """
        with translated(f"creating queue {name}"):
            try:
                response = self._client.create_queue(QueueName=name, Attributes=dict(attributes), tags=dict(tags))
                url = response["QueueUrl"]
                adopted = False
            except ClientError as error:
                if error_code(error) not in ("QueueAlreadyExists", "QueueNameExists"):
                    raise
                url = self._client.get_queue_url(QueueName=name)["QueueUrl"]
                adopted = True
            # CreateQueue returns an existing queue with the same attributes as if it made it, tags untouched.
            if owner_tag is not None:
                owner = self._client.list_queue_tags(QueueUrl=url).get("Tags", {}).get(owner_tag)
                if owner is not None and owner != tags.get(owner_tag):
                    raise QueueTaken(
                        f"queue {name} exists and its tag {owner_tag} is {owner!r}, not {tags.get(owner_tag)!r}: "
                        "it belongs to another replica, and sharing it would split the messages between the two"
                    )
            if adopted:
                self._client.set_queue_attributes(QueueUrl=url, Attributes=dict(attributes))
                self._client.tag_queue(QueueUrl=url, Tags=dict(tags))
            arn = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return str(url), str(arn)

    def set_attributes(self, url: str, attributes: Mapping[str, str]) -> None:
        with translated(f"setting the attributes of {url}"):
            self._client.set_queue_attributes(QueueUrl=url, Attributes=dict(attributes))

    def tag(self, url: str, tags: Mapping[str, str]) -> None:
        with translated(f"tagging {url}"):
            self._client.tag_queue(QueueUrl=url, Tags=dict(tags))

    def delete(self, url: str) -> None:
        try:
            with translated(f"deleting {url}"):
                self._client.delete_queue(QueueUrl=url)
        except PermanentError as error:
            if "NonExistentQueue" not in str(error) and "QueueDoesNotExist" not in str(error):
                raise


def subscription_policy(queue_arn: str, topic_arn: str) -> str:
    """A queue policy that accepts messages only from the one SNS topic."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "FromModelEventsTopicOnly",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )
