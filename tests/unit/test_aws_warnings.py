"""The AWS SDK's process-wide warnings filters are removed again (scikit-learn replays each one per tree)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import urllib3.exceptions

from agent.boundaries.aws import forget_sdk_warning_filters


def test_importing_the_agent_leaves_the_interpreters_warnings_filters_as_they_were() -> None:
    # GIVEN a fresh interpreter, WHEN it imports the whole agent (boto3, botocore, urllib3 with it)
    script = (
        "import warnings; before = list(warnings.filters); import agent.cli; "
        "print(len(before), len(warnings.filters), before == warnings.filters)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    # THEN its filters are the interpreter's own
    count_before, count_after, same = result.stdout.split()
    assert (count_after, same) == (count_before, "True"), result.stdout


def test_only_the_sdks_own_filters_go() -> None:
    with warnings.catch_warnings():
        # GIVEN a user's filter for a urllib3 warning, then the three the SDK adds as it adds them
        warnings.resetwarnings()
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        users = list(warnings.filters)
        warnings.simplefilter("always", urllib3.exceptions.SecurityWarning, append=True)
        warnings.simplefilter("default", urllib3.exceptions.InsecurePlatformWarning, append=True)
        warnings.filterwarnings(
            "ignore",
            message="A true SSLContext object is not available.*",
            category=urllib3.exceptions.InsecurePlatformWarning,
            module=r".*urllib3\.util\.ssl_",
        )

        # WHEN they are forgotten
        removed = forget_sdk_warning_filters()

        # THEN the user's stays, and a warning it does not cover is shown as Python shows any
        assert (removed, warnings.filters) == (3, users)
        with warnings.catch_warnings(record=True) as shown:
            for _ in range(2):
                warnings.warn("unverified", urllib3.exceptions.SecurityWarning, stacklevel=1)
        assert len(shown) == 1
