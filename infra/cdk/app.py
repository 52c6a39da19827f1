"""`cdk synth|deploy` entry point (see cdk.json): settings from context, one stack, cdk-nag on synthesis."""

from __future__ import annotations

import aws_cdk as cdk

from infra.cdk import nag
from infra.cdk.config import StackConfig
from infra.cdk.stack import ModelReloaderStack


def build(app: cdk.App) -> ModelReloaderStack:
    config = StackConfig.from_context(app.node.try_get_context)
    stack = ModelReloaderStack(app, config.stack_name, config=config)
    nag.check(app)
    return stack


def main() -> None:
    app = cdk.App()
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
