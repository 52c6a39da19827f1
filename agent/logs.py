"""Log lines as `time level logger message key=value ...`, carrying model and version when given.

A leaf module: every layer logs through the standard `logging` module; a line about a model goes
through `model_logger(log, model, version)`, which carries them as structured fields (kopf's
ObjectLogger), rather than an `extra=` at each call. This module formats and carries, nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

FIELDS = ("model", "version", "event", "message_id", "queue")


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [f"{name}={getattr(record, name)}" for name in FIELDS if getattr(record, name, None) is not None]
        return f"{line} {' '.join(extras)}" if extras else line


class _FieldsAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def model_logger(logger: logging.Logger, model: str, version: int | None = None) -> logging.LoggerAdapter:  # type: ignore[type-arg]
    """`logger`, with every line carrying `model` (and `version`) as fields."""
    fields: dict[str, Any] = {"model": model}
    if version is not None:
        fields["version"] = version
    return _FieldsAdapter(logger, fields)


def with_fields(logger: logging.Logger, **fields: Any) -> logging.LoggerAdapter:  # type: ignore[type-arg]
    """`logger`, with every line carrying `fields` (e.g. queue=..., message_id=...)."""
    return _FieldsAdapter(logger, fields)


def configure(level: str = "info", tag: str | None = None) -> None:
    """`tag`: said on every line after the level (a serving process's "process-N")."""
    handler = logging.StreamHandler()
    where = f"{tag} %(name)s" if tag else "%(name)s"
    handler.setFormatter(KeyValueFormatter(f"%(asctime)s %(levelname)s {where}: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
