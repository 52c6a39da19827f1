"""The boto3 clients' timestamp parser: the same datetimes as botocore's own, for every form AWS sends."""

from __future__ import annotations

import botocore.utils
import pytest

from agent.boundaries.aws import client, parse_timestamp


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2026-12-01T21:59:24.000Z", id="iso-millis-z (S3 listings)"),
        pytest.param("2026-12-01T21:59:24Z", id="iso-z"),
        pytest.param("2026-12-01T21:59:24.123456+01:00", id="iso-offset"),
        pytest.param("Tue, 01 Dec 2026 21:59:24 GMT", id="rfc1123 (Last-Modified header)"),
        pytest.param(1764625164, id="epoch-int"),
        pytest.param("1764625164.5", id="epoch-string"),
    ],
)
def test_parse_timestamp_agrees_with_botocore(value: str | int) -> None:
    parsed = parse_timestamp(value)
    assert parsed == botocore.utils.parse_timestamp(value)
    assert parsed.tzinfo is not None


def test_clients_use_it() -> None:
    s3 = client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:1")
    factory = s3._endpoint._response_parser_factory
    assert factory._defaults["timestamp_parser"] is parse_timestamp
