"""cdk-nag's AwsSolutions pack runs on every synthesis: no finding goes unacknowledged, and every
acknowledgement says why."""

from __future__ import annotations

import pytest
from aws_cdk import aws_sqs as sqs

from infra.cdk import nag
from infra.cdk.app import build
from tests.infra.synthesis import aws_cdk, synth
from tests.infra.test_stack import VARIANTS, resources


@pytest.mark.parametrize("context", VARIANTS)
def test_every_variant_synthesises_with_no_unacknowledged_finding(context: dict[str, str]) -> None:
    # GIVEN / WHEN the app synthesises with AwsSolutions attached (synth raises on any finding)
    template = synth(**context)
    # THEN every acknowledgement, as written into the template, has a reason of substance
    acknowledged = [
        rule
        for kind in ("AWS::SNS::Topic", "AWS::S3::Bucket", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role")
        for resource in resources(template, kind).values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert acknowledged
    for rule in acknowledged:
        assert rule["id"].startswith("AwsSolutions-")
        assert len(rule["reason"].split()) >= 5, rule


def test_an_unsafe_resource_fails_synthesis() -> None:
    # GIVEN the app with an unencrypted queue that has no DLQ and allows plain HTTP
    app = aws_cdk.App()
    stack = build(app)
    sqs.Queue(stack, "Careless", encryption=sqs.QueueEncryption.UNENCRYPTED)
    # WHEN it synthesises THEN cdk-nag stops it and names the rules
    with pytest.raises(RuntimeError, match="ValidationFailed") as failure:
        app.synth()
    for rule in ("AwsSolutions-SQS2", "AwsSolutions-SQS3", "AwsSolutions-SQS4"):
        assert rule in str(failure.value)


def test_an_acknowledgement_needs_a_reason() -> None:
    stack = aws_cdk.Stack(aws_cdk.App(), "Any")
    with pytest.raises(ValueError, match="needs a reason"):
        nag.acknowledge(stack, "S1", "  ")
