"""The janitor keeps its own copy of the agent's queue names and tags; both must agree."""

from __future__ import annotations

import pytest

from agent.domain import fleet
from functions.janitor import names


@pytest.mark.parametrize(
    "name", ["HEARTBEAT_TAG", "TOPIC_TAG", "SUBSCRIPTION_TAG", "API_TAG", "REPLICA_TAG", "DLQ_SUFFIX"]
)
def test_janitor_copy_equals_the_agents(name: str) -> None:
    assert getattr(names, name) == getattr(fleet, name)


def test_the_copy_has_nothing_the_agent_lacks() -> None:
    copied = {name for name in vars(names) if name.isupper()}
    assert copied <= {name for name in vars(fleet) if name.isupper()}
