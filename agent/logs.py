"""Log lines as `time level logger message key=value ...`, carrying model and version when given.

A leaf module: every layer logs through the standard `logging` module with `extra={"model": ..,
"version": ..}`; this only formats.
"""

from __future__ import annotations

import logging

FIELDS = ("model", "version", "event", "message_id", "queue")


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [f"{name}={getattr(record, name)}" for name in FIELDS if getattr(record, name, None) is not None]
        return f"{line} {' '.join(extras)}" if extras else line


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
