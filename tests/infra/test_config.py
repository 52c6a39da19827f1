"""The app's context settings: defaults, strings from `-c` coerced, bad values named, docs in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.cdk.config import ConfigError, EventRoute, StackConfig

DOCS = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def from_context(**context: object) -> StackConfig:
    return StackConfig.from_context(context.get)


def test_defaults() -> None:
    config = from_context()
    assert (config.queue_prefix, config.models_prefix, config.event_route) == (
        "reloader",
        "models/",
        EventRoute.NOTIFICATIONS,
    )
    assert (config.fixed_queues, config.functions, config.bucket_name) == (0, True, None)


def test_values_given_on_the_command_line_arrive_as_strings_and_are_coerced() -> None:
    config = from_context(fixedQueues="3", functions="false", eventRoute="eventbridge", bucketVersioning="true")
    assert (config.fixed_queues, config.functions, config.event_route, config.bucket_versioning) == (
        3,
        False,
        EventRoute.EVENTBRIDGE,
        True,
    )


@pytest.mark.parametrize(
    ("context", "named"),
    [
        pytest.param({"queuePrefix": "Has_Upper"}, "queuePrefix", id="prefix-alphabet"),
        pytest.param({"queuePrefix": "reloader-b"}, "queuePrefix 'reloader-b' contains '-'", id="prefix-hyphen"),
        pytest.param({"queuePrefix": "r" * 21}, "queuePrefix", id="prefix-too-long"),
        pytest.param({"modelsPrefix": "models"}, "modelsPrefix", id="prefix-without-slash"),
        pytest.param({"eventRoute": "carrier-pigeon"}, "eventRoute", id="unknown-route"),
        pytest.param({"fixedQueues": "-1"}, "fixedQueues", id="negative-queues"),
        pytest.param({"bucketName": "theirs", "functions": "false"}, "bucketName", id="existing-bucket-needs-lambda"),
        pytest.param(
            {"bucketName": "theirs", "importBucket": "true"}, "importBucket", id="import-needs-created-bucket"
        ),
    ],
)
def test_a_bad_value_stops_synthesis_and_names_its_context_key(context: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        from_context(**context)


def test_the_deployment_docs_list_every_context_value_with_its_default() -> None:
    # GIVEN the table of context values in docs/deployment.md
    rows = {
        match.group(1): match.group(2).strip()
        for match in re.finditer(r"^\| `([A-Za-z]+)` \| ([^|]*) \|", DOCS.read_text(), flags=re.MULTILINE)
    }
    # THEN it has a row for each setting, with the model's default
    for name, field in StackConfig.model_fields.items():
        key = field.alias or name
        assert key in rows, f"docs/deployment.md does not document context value {key}"
        default = field.default.value if isinstance(field.default, EventRoute) else field.default
        if default is None:
            shown = "(none)"
        elif isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        else:
            shown = f"`{default}`"
        assert rows[key] == shown, f"{key}: docs say {rows[key]}, the default is {shown}"
