"""Synthesis of the CDK app as `cdk synth` does it (context, app, stack, cdk-nag), once per context."""

from __future__ import annotations

import os
from functools import cache

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")

aws_cdk = pytest.importorskip("aws_cdk", reason="the infra extra is not installed")

from aws_cdk.assertions import Template  # noqa: E402

from infra.cdk.app import build  # noqa: E402


@cache
def _synth(context: tuple[tuple[str, str], ...]) -> Template:
    app = aws_cdk.App(context=dict(context))
    stack = build(app)
    app.synth()  # runs cdk-nag: raises on any unacknowledged finding
    return Template.from_stack(stack)


def synth(**context: str) -> Template:
    return _synth(tuple(sorted(context.items())))
