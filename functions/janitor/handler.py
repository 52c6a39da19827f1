"""Lambda entry point of the janitor: Powertools logging and metrics around core.Janitor.

A sweep in which some queue could not be removed still sweeps every other queue, logs and counts the
failures (`QueuesFailed`), and then raises: the invocation fails, Lambda's `Errors` metric counts it
(the stack alarms on it), and the next scheduled run tries again.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from .core import Janitor
from .core import logger as core_logger
from .settings import JanitorSettings

logger = Logger()
metrics = Metrics()
copy_config_to_registered_loggers(source_logger=logger, include={core_logger.name})


class SweepFailed(RuntimeError):
    """Some queues could not be removed; the rest of the sweep was done."""


@cache
def _janitor() -> Janitor:
    """Built on the first invocation and kept for the warm ones; endpoints from the AWS environment."""
    return Janitor(boto3.client("sqs"), boto3.client("sns"), JanitorSettings.load())


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
@event_parser(model=EventBridgeModel)
def handler(event: EventBridgeModel, context: LambdaContext) -> dict[str, Any]:
    sweep = _janitor().sweep()
    metrics.add_metric(name="QueuesChecked", unit=MetricUnit.Count, value=sweep.checked)
    metrics.add_metric(name="QueuesDeleted", unit=MetricUnit.Count, value=len(sweep.deleted))
    metrics.add_metric(name="QueuesFailed", unit=MetricUnit.Count, value=len(sweep.failed))
    logger.info(
        "janitor: sweep done",
        extra={"checked": sweep.checked, "deleted": sweep.deleted, "failed": sweep.failed},
    )
    if sweep.failed:
        raise SweepFailed(f"janitor: could not remove {len(sweep.failed)} queue(s): {', '.join(sweep.failed)}")
    return {"checked": sweep.checked, "deleted": sweep.deleted, "failed": sweep.failed}
