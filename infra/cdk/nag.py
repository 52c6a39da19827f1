"""cdk-nag on every synthesis: the AwsSolutions pack, and acknowledgements that always carry a reason."""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def check(app: cdk.App) -> None:
    """Run AwsSolutions on synthesis; any unacknowledged finding interrupts it."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))


def acknowledge(scope: IConstruct, rule: str, reason: str, applies_to: str | None = None) -> None:
    """Accept one AwsSolutions finding on `scope` (and below), for a stated reason.

    `applies_to` narrows a granular rule (IAM4, IAM5) to one finding, e.g. `Resource::arn:...:reloader-*`.
    """
    if not reason.strip():
        raise ValueError(f"an acknowledgement of {rule} needs a reason")
    rule_id = f"AwsSolutions-{rule}" + (f"[{applies_to}]" if applies_to else "")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


def finding_text(stack: cdk.Stack, value: str) -> str:
    """A resource as cdk-nag's granular findings spell it: `{"Ref": X}` as `<X>`, `{"Fn::GetAtt": [X, A]}`
    as `<X.A>`, joins flattened; so an acknowledgement can name exactly one finding."""
    return _flatten(stack.resolve(value))


def _flatten(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return f"<{argument}>"
        if function == "Fn::GetAtt":
            return f"<{argument[0]}.{argument[1]}>"
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(_flatten(part) for part in parts)
    raise ValueError(f"cannot spell {value!r} as a cdk-nag finding")
