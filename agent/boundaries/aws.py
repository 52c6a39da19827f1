"""boto3 clients and the translation of botocore errors into ours, shared by the S3, SQS and SNS modules.

Endpoints and credentials come from the standard AWS environment (`AWS_ENDPOINT_URL`,
`AWS_REGION`, profiles, ...): nothing project-specific.

Importing the SDK adds three process-wide warnings filters (urllib3's two, botocore's one), and
scikit-learn's joblib wrapper replays every filter for each task it runs: for each tree of a
forest's `predict`, so they cost a 60-tree forest about 15 % more instructions per request than the
same handler in an app without boto3. This module removes them again; see `forget_sdk_warning_filters`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

import boto3
import botocore.session
import botocore.utils
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from agent.domain.errors import PermanentError, TemporaryError

# Error codes that a retry cannot fix.
PERMANENT_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "NoSuchBucket",
        "InvalidBucketName",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NotFound",
        "NotFoundException",
        "InvalidParameterValue",
        "InvalidParameter",
        "AuthorizationError",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
    }
)


def forget_sdk_warning_filters() -> int:
    """Remove the warnings filters that importing urllib3 and botocore added; return how many.

    What they did is Python's default but for one case: botocore ignores urllib3's
    InsecurePlatformWarning about a missing SSLContext (urllib3 2 never raises it on Python 3.11),
    urllib3 shows its InsecurePlatformWarning once per place (Python's default for a warning), and
    its SecurityWarning (an unverified HTTPS request, say) every time. Without them a SecurityWarning
    is shown once per place, as every other warning is. Only those exact filters go: one the user
    set (`-W`, `PYTHONWARNINGS`) or a handler adds stays, even for a urllib3 warning.
    """
    kept = [entry for entry in warnings.filters if not _from_sdk(entry)]
    removed = len(warnings.filters) - len(kept)
    if removed:
        warnings.resetwarnings()  # the public way to tell the warnings machinery its filters changed
        cast(list[Any], warnings.filters)[:] = kept
    return removed


# The filters as urllib3 2 and botocore add them: (action, message, category, module), patterns as text.
SDK_WARNING_FILTERS = frozenset(
    {
        ("always", None, "urllib3.exceptions.SecurityWarning", None),
        ("default", None, "urllib3.exceptions.InsecurePlatformWarning", None),
        (
            "ignore",
            "A true SSLContext object is not available.*",
            "urllib3.exceptions.InsecurePlatformWarning",
            r".*urllib3\.util\.ssl_",
        ),
    }
)


def _from_sdk(entry: tuple[Any, ...]) -> bool:
    action, message, category, module, _ = entry
    name = f"{category.__module__}.{category.__qualname__}" if isinstance(category, type) else None
    as_text = (action, getattr(message, "pattern", message), name, getattr(module, "pattern", module))
    return as_text in SDK_WARNING_FILTERS


forget_sdk_warning_filters()


def client(service: str, **kwargs: Any) -> Any:
    """A boto3 client with retries in standard mode, short connect timeouts and a fast timestamp parser."""
    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)
    core = botocore.session.get_session()
    # botocore parses every timestamp with dateutil (about 0.1 ms each, so 4 ms of CPU for a LIST of 40
    # objects); the AWS CLI replaces the parser the same way.
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
    session = boto3.session.Session(botocore_session=core)
    return session.client(service, config=config, **kwargs)  # type: ignore[call-overload]


def parse_timestamp(value: str | int | float) -> datetime:
    """An AWS timestamp as a timezone-aware datetime: ISO 8601 (response bodies) at C speed, else botocore's way."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    fallback: datetime = botocore.utils.parse_timestamp(value)
    return fallback


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn botocore errors raised inside into TemporaryError or PermanentError, saying `what` failed."""
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        detail = error.response.get("Error", {}).get("Message", "") or f"HTTP {status}"
        message = f"{what}: {code or 'error'}: {detail}"
        if code in PERMANENT_CODES:
            raise PermanentError(message) from error
        raise TemporaryError(message) from error
    except (ConnectionError, HTTPClientError) as error:
        raise TemporaryError(f"{what}: cannot reach the endpoint: {error}") from error
    except BotoCoreError as error:
        raise TemporaryError(f"{what}: {error}") from error


def count_calls(boto_client: Any, service: str, record: Callable[[str, float], None]) -> None:
    """Call `record(operation, seconds)` after every API call the client makes (s3transfer's included)."""

    def before_call(context: dict[str, Any] | None = None, **_: Any) -> None:
        if context is not None:
            context["reloader_started"] = time.perf_counter()

    def after_call(event_name: str, context: dict[str, Any] | None = None, **_: Any) -> None:
        # after-call and after-call-error both name the operation last: "after-call.s3.GetObject"
        started = (context or {}).get("reloader_started")
        record(event_name.rsplit(".", 1)[-1], time.perf_counter() - started if started is not None else 0.0)

    boto_client.meta.events.register(f"before-call.{service}.*", before_call)
    boto_client.meta.events.register(f"after-call.{service}.*", after_call)
    boto_client.meta.events.register(f"after-call-error.{service}.*", after_call)
