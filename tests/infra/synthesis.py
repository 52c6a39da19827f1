"""Synthesis of the CDK app as `cdk synth` does it (context, app, stack, cdk-nag), once per context."""

from __future__ import annotations

from functools import cache

import aws_cdk
from aws_cdk.assertions import Template

from infra.cdk.app import build

__all__ = ["Template", "aws_cdk", "synth"]


@cache
def _synth(context: tuple[tuple[str, str], ...]) -> Template:
    app = aws_cdk.App(context=dict(context))
    stack = build(app)
    app.synth()  # runs cdk-nag: raises on any unacknowledged finding
    return Template.from_stack(stack)


def synth(**context: str) -> Template:
    return _synth(tuple(sorted(context.items())))
