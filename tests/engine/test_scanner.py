"""The periodic scan's spread: every delay stays within interval +/- jitter, and they differ."""

from __future__ import annotations

import pytest

from agent.engine.scanner import PeriodicScan
from agent.engine.scheduler import Scheduler


@pytest.mark.parametrize(("interval", "jitter"), [(300.0, 0.1), (10.0, 0.5), (60.0, 0.0)])
def test_scan_delays_stay_within_the_interval_plus_or_minus_jitter(interval: float, jitter: float) -> None:
    periodic = PeriodicScan(None, Scheduler(), interval, jitter, on_first_scan=lambda: None)  # type: ignore[arg-type]
    delays = [periodic._interval() for _ in range(2000)]  # the delay before each next scan
    assert all(interval * (1 - jitter) <= d <= interval * (1 + jitter) for d in delays)
    if jitter:
        assert max(delays) - min(delays) > interval * jitter  # spread, so replicas do not scan together
    else:
        assert set(delays) == {interval}
