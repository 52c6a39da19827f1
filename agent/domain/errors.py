"""The error vocabulary of the whole agent.

Two classes matter to the engine: a `TemporaryError` is retried later (and leaves its SQS
message for redelivery); a `PermanentError` is recorded and not retried until something
changes. Boundary modules translate library errors into these once, at the edge.
"""

from __future__ import annotations


class ReloaderError(Exception):
    """Base of every error this project raises on purpose."""


class TemporaryError(ReloaderError):
    """Retry later: the network, a throttled API, an object that changed while we read it."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(ReloaderError):
    """Retrying the same input will fail the same way: record it and wait for a change."""


class SpecError(PermanentError):
    """The API spec is invalid; the message names the field, what was expected and what was found."""


class UnsafeKeyError(PermanentError):
    """An S3 key that would be written outside its model's directory."""


class ModelNotFoundError(ReloaderError, LookupError):
    """A request named a model or version that is not being served."""


class ModelUnavailableError(ReloaderError):
    """A request's model version exists but cannot serve now (its cold load failed or is still running):
    answered with 503 and the reason."""


class ObjectChangedError(TemporaryError):
    """An object changed in S3 while we downloaded it (its ETag no longer matches the listing)."""


# -- TensorFlow Serving ---------------------------------------------------------------------


class ReloadUnconfirmedError(TemporaryError):
    """A config reload hit its deadline: TF Serving may have applied it (it waits for new models to load)."""


class VersionGoneError(TemporaryError):
    """TF Serving no longer serves the internal version a request named (it was swapped or TF Serving restarted)."""
