"""Routing S3 keys to the models they belong to."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.domain.locations import LocalLocation, S3Location, parse_location
from agent.domain.routing import ModelSet, ModelSource

FIXED = ModelSet(
    fixed=(
        ModelSource("iris", S3Location("bkt", "models/iris")),
        ModelSource("iris-v2", S3Location("bkt", "models/iris/v2")),
        ModelSource("root", S3Location("other", "")),
    )
)
DIRECTORY = ModelSet(directory=S3Location("bkt", "zoo"))


@pytest.mark.parametrize(
    ("models", "bucket", "key", "expected"),
    [
        pytest.param(FIXED, "bkt", "models/iris/1/model.pkl", "iris", id="fixed"),
        pytest.param(FIXED, "bkt", "models/iris/v2/1/x", "iris-v2", id="longest-prefix-wins"),
        pytest.param(FIXED, "bkt", "models/iris2/1/x", None, id="prefix-boundary"),
        pytest.param(FIXED, "bkt", "models/iris", None, id="the-prefix-itself"),
        pytest.param(FIXED, "nope", "models/iris/1/x", None, id="other-bucket"),
        pytest.param(FIXED, "other", "1/x", "root", id="whole-bucket"),
        pytest.param(DIRECTORY, "bkt", "zoo/cat/1/model.pkl", "cat", id="dir"),
        pytest.param(DIRECTORY, "bkt", "zoo/cat", None, id="dir-file-at-top"),
        pytest.param(DIRECTORY, "bkt", "zoo2/cat/1/x", None, id="dir-boundary"),
        pytest.param(DIRECTORY, "bkt", "zoo/../1/x", None, id="dir-unsafe-name"),
    ],
)
def test_route(models, bucket, key, expected):
    found = models.locate(bucket, key)
    assert (found[0] if found else None) == expected


def test_dir_sources_are_children_of_the_folder():
    source = DIRECTORY.source("cat")
    assert source is not None and source.location == S3Location("bkt", "zoo/cat")
    assert DIRECTORY.source("..") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("s3://b/p/q/", S3Location("b", "p/q"), id="trailing-slash"),
        pytest.param("s3://b", S3Location("b", ""), id="bucket-only"),
        pytest.param("/tmp/models", LocalLocation(Path("/tmp/models")), id="local"),
    ],
)
def test_parse_location(value, expected):
    assert parse_location(value) == expected


@pytest.mark.parametrize("value", ["s3://", "s3:///x", "gs://b/x", "s3://b/a/../c"])
def test_parse_location_refuses(value):
    with pytest.raises(ValueError, match="expected"):
        parse_location(value)
