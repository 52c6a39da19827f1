"""Reloader settings: the optional `reloading:` block of an API, overridable by environment.

Precedence: environment variable (`RELOADER_<FIELD>`) > the spec's `reloading:` block >
default. Every field has a unit and a default; they are documented in the README.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from agent.domain import fleet


class ReloadingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELOADER_", extra="forbid", frozen=True)

    interval: float | None = Field(
        None,
        gt=0,
        description="Seconds between full scans of every model. Default: 10 without an event "
        "source (Cortex's polling interval), 300 with one (the scan is then only the safety net).",
    )
    jitter: float = Field(0.1, ge=0, le=1, description="Fraction of `interval` by which scans are spread.")
    model_dir: Path | None = Field(
        None, description="Local folder models are downloaded to. Default: a folder per API under the temp dir."
    )
    workers: int = Field(8, ge=1, le=256, description="Models reconciled in parallel.")
    retire_after: float = Field(
        30.0, ge=0, description="Seconds a replaced version's folder is kept for requests still using it."
    )
    cold_load_deadline: float = Field(
        30.0,
        gt=0,
        description="With cache_size: seconds a request waits for its model's cold load before answering 503 "
        "(the load goes on in the background and serves the next request).",
    )
    download_concurrency: int = Field(10, ge=1, le=100, description="Parallel S3 GETs per version.")
    retry_backoff: float = Field(1.0, gt=0, description="Seconds before the first retry of a failed version.")
    retry_backoff_max: float = Field(60.0, gt=0, description="Cap, in seconds, of the doubling retry delay.")
    ready_marker: str | None = Field(
        None, description="Object name (e.g. _READY) that makes a version loadable once it exists in its folder."
    )
    early_downloads: bool = Field(
        True,
        description="With a ready marker and no cache_size: download a version's files as their events arrive, "
        "before its marker lands (the marker's listing still decides what loads).",
    )
    settle: float = Field(
        1.0,
        ge=0,
        description="Without a ready marker: seconds a version's listing must stay unchanged before it loads.",
    )
    queue_url: str | None = Field(None, description="SQS queue of S3 notifications to consume (queue mode).")
    topic_arn: str | None = Field(
        None, description="SNS topic of S3 notifications; the agent creates and owns its queue (topic mode)."
    )
    replica_id: str | None = Field(None, description="Names this replica's queue in topic mode. Default: hostname.")
    queue_prefix: str = Field(
        "reloader",
        min_length=1,
        max_length=fleet.MAX_PREFIX,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Name prefix of agent-created queues (the janitor only touches these).",
    )
    visibility_timeout: int = Field(
        300, ge=0, le=43200, description="Seconds a received message stays hidden: longer than the slowest reload."
    )
    heartbeat_interval: float = Field(
        300.0, gt=0, description="Seconds between refreshes of the queue's heartbeat tag (topic mode)."
    )
    # -- gRPC APIs (handler.protobuf_path) ---------------------------------------------------
    http_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="With handler.protobuf_path (the API's port serves gRPC): the port of /healthz, /readyz, "
        "/models and /metrics. `serve --http-port` wins. Default: the API's port + 1.",
    )
    grpc_max_message_size: int = Field(
        4 * 1024 * 1024,
        ge=1,
        le=2**31 - 1,
        description="Largest gRPC message received or sent, in bytes (grpcio's default, 4 MiB; Cortex set no limit).",
    )
    shutdown_drain: float = Field(
        0.0,
        ge=0,
        le=300,
        description="Seconds the replica keeps serving after SIGTERM, /readyz answering 503, before it stops "
        "accepting requests (0: stop at once; a Kubernetes preStop sleep does the same job).",
    )
    shutdown_timeout: float = Field(
        20.0,
        gt=0,
        le=3600,
        description="Seconds, after the drain, within which the process exits: requests in flight finish, the "
        "agent stops (topic mode: deletes its queues); a download or load still running then is abandoned. "
        "Keep terminationGracePeriodSeconds above preStop + shutdown_drain + shutdown_timeout.",
    )
    # -- TensorFlow Serving (handler.type: tensorflow) --------------------------------------
    tfserving_address: str = Field(
        "127.0.0.1:9000",
        min_length=1,
        description="TF Serving's gRPC address, host:port (its --port; TF Serving's own default is 8500).",
    )
    tfserving_model_dir: str | None = Field(
        None,
        description="model_dir as TF Serving sees it, when it runs in another container with the folder "
        "mounted elsewhere (model M's base_path is <this>/M); an absolute path. Default: model_dir itself.",
    )
    tfserving_rpc_timeout: float = Field(
        30.0, gt=0, description="Deadline, in seconds, of each config reload, status and metadata call."
    )
    tfserving_load_timeout: float = Field(
        300.0,
        gt=0,
        description="Seconds a version may take to become AVAILABLE in TF Serving; also added to the deadline "
        "of a config reload that adds a model (TF Serving answers it once the model loaded).",
    )
    tfserving_predict_timeout: float = Field(60.0, gt=0, description="Deadline, in seconds, of one Predict call.")
    tfserving_watch_interval: float = Field(
        2.0,
        gt=0,
        description="Seconds between checks that TF Serving still serves what it loaded "
        "(after a restart the agent sends its config again).",
    )

    @model_validator(mode="after")
    def _one_event_source(self) -> ReloadingSettings:
        if self.queue_url and self.topic_arn:
            raise ValueError("expected queue_url (one queue) or topic_arn (a queue per replica), found both")
        return self

    @field_validator("tfserving_model_dir")
    @classmethod
    def _absolute_for_tf_serving(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"expected an absolute path (TF Serving resolves base paths on its own), found {value!r}")
        return value

    @field_validator("ready_marker")
    @classmethod
    def _marker_is_a_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value):
            raise ValueError(f"expected an object name without '/', found {value!r}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    @property
    def event_driven(self) -> bool:
        return bool(self.queue_url or self.topic_arn)

    @property
    def scan_interval(self) -> float:
        if self.interval is not None:
            return self.interval
        return 300.0 if self.event_driven else 10.0


def environment_variable(field: str) -> str | None:
    """The environment variable that sets `field`, when one is set (its value wins over the spec's)."""
    wanted = f"RELOADER_{field}".upper()
    return next((name for name in os.environ if name.upper() == wanted), None)


def describe_settings() -> list[tuple[str, str, Any, str]]:
    """(field, environment variable, default, description) rows for docs and `--help`."""
    rows = []
    for name, info in ReloadingSettings.model_fields.items():
        rows.append((name, f"RELOADER_{name.upper()}", info.default, info.description or ""))
    return rows
