"""A log that speaks once per change of state rather than once per retry (timed work is the scheduler's)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class StateLog:
    """Log `failing: <error>` when a state turns bad or its error changes, and `recovered` once when it
    turns good again; repeated reports of the same state say nothing."""

    def __init__(self, log: logging.Logger, failing: str, recovered: str, extra: dict[str, Any] | None = None) -> None:
        self._log = log
        self._failing = failing
        self._recovered = recovered
        self._extra = extra
        self.error: str | None = None

    def __call__(self, error: str | None) -> None:
        if error == self.error:
            return
        if error:
            self._log.warning(self._failing, error, extra=self._extra)
        elif self.error:
            self._log.info(self._recovered, extra=self._extra)
        self.error = error
