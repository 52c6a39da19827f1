"""S3 change events, whichever way they arrive: parsed with Powertools' pydantic models.

Accepted message bodies:
- an S3 event notification (`{"Records": [...]}`), as S3 -> SQS, or SNS -> SQS with raw delivery;
- the same wrapped in an SNS notification (`{"Type": "Notification", "Message": "..."}`);
- an EventBridge "Object Created" / "Object Deleted" event (directly or wrapped in SNS);
- `s3:TestEvent` (sent when notifications are configured): no events.
Object keys in S3 notifications are URL-encoded (`+` for a space) and are decoded here;
EventBridge keys arrive plain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.parser.models import (
    S3EventNotificationEventBridgeModel,
    S3Model,
    SnsNotificationModel,
)
from pydantic import ValidationError

from agent.domain.errors import PermanentError

EVENTBRIDGE_TYPES = {"Object Created": False, "Object Deleted": True}


class BadMessage(PermanentError):
    """A message that is not an S3 change event; retrying it cannot help."""


@dataclass(frozen=True)
class ObjectEvent:
    bucket: str
    key: str
    removed: bool
    time: float  # when S3 says the change happened, seconds since the epoch
    etag: str = ""  # of a created object, as S3 reports it (without quotes); "" when the event has none
    size: int = -1  # of a created object, in bytes; -1 when the event has none


def parse_message(body: str) -> tuple[ObjectEvent, ...]:
    """The object events in an SQS message body; BadMessage saying what was expected otherwise."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        raise BadMessage(f"expected a JSON S3 event, found invalid JSON ({error}): {body[:80]!r}") from None
    return _parse(data, wrapped=False)


def _parse(data: Any, wrapped: bool) -> tuple[ObjectEvent, ...]:
    if not isinstance(data, dict):
        raise BadMessage(f"expected a JSON object, found {type(data).__name__}")
    try:
        if data.get("Type") == "Notification" and not wrapped:
            notification = SnsNotificationModel.model_validate(data)
            return _parse(json.loads(str(notification.Message)), wrapped=True)
        if data.get("Event") == "s3:TestEvent":
            return ()
        if "Records" in data:
            return _from_notification(S3Model.model_validate(data))
        if data.get("source") == "aws.s3" and "detail-type" in data:
            return _from_eventbridge(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadMessage(f"expected an S3 event, found an invalid field {where}: {first['msg']}") from None
    except json.JSONDecodeError as error:
        raise BadMessage(f"expected a JSON S3 event inside the SNS notification, found invalid JSON: {error}") from None
    except (AttributeError, TypeError, KeyError) as error:  # Powertools' own validators trip on some shapes
        raise BadMessage(f"expected an S3 event, found a malformed one ({type(error).__name__}: {error})") from None
    raise BadMessage(
        "expected an S3 event notification (Records), an SNS notification or an EventBridge S3 event, "
        f"found keys {sorted(data)[:8]}"
    )


def _from_notification(model: S3Model) -> tuple[ObjectEvent, ...]:
    events = []
    for record in model.Records:
        name = record.eventName
        if not (name.startswith("ObjectCreated:") or name.startswith("ObjectRemoved:")):
            continue  # restores, tiering, replication: nothing for us
        s3_object = record.s3.object
        if s3_object is None:
            continue
        events.append(
            ObjectEvent(
                bucket=record.s3.bucket.name,
                key=unquote_plus(s3_object.key),
                removed=name.startswith("ObjectRemoved:"),
                time=record.eventTime.timestamp(),
                etag=(s3_object.eTag or "").strip('"'),
                size=-1 if s3_object.size is None else int(s3_object.size),
            )
        )
    return tuple(events)


def _from_eventbridge(data: dict[str, Any]) -> tuple[ObjectEvent, ...]:
    removed = EVENTBRIDGE_TYPES.get(data["detail-type"])
    if removed is None:
        return ()
    event = S3EventNotificationEventBridgeModel.model_validate(data)
    found = event.detail.object
    size = -1 if found.size is None else int(found.size)
    etag = found.etag.strip('"')
    return (ObjectEvent(event.detail.bucket.name, found.key, removed, event.time.timestamp(), etag, size),)
