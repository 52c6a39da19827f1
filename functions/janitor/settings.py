"""The janitor's settings: explicit argument > environment variable > default, validated on start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JanitorSettings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    queue_prefix: str = Field(
        "reloader",
        alias="QUEUE_PREFIX",
        pattern=r"^[A-Za-z0-9_-]{1,60}$",
        description="Only queues named `<queue_prefix>-...` are ever considered.",
    )
    topic_arn: str = Field(
        alias="TOPIC_ARN",
        pattern=r"^arn:[^:]+:sns:[^:]*:[0-9]*:.+$",
        description="The stack's topic: replica queues are unsubscribed from it.",
    )
    heartbeat_ttl_seconds: int = Field(
        3600,
        alias="HEARTBEAT_TTL_SECONDS",
        ge=60,
        description="Seconds after its last heartbeat at which a replica's queue is stale.",
    )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **explicit: Any) -> JanitorSettings:
        """From `explicit` (by field name), else the environment (by variable name), else defaults."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            if name in explicit:
                values[name] = explicit[name]
            elif field.alias and field.alias in environ:
                values[name] = environ[field.alias]
        return cls.model_validate(values)
