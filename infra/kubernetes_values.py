"""From `cdk deploy --outputs-file` to the Kubernetes manifests' values: `deploy/kubernetes/base/values.env`.

    npx cdk deploy --outputs-file cdk-outputs.json
    python -m infra.kubernetes_values cdk-outputs.json > deploy/kubernetes/base/values.env

It prints the environment the reloader container gets (topic mode: the topic, the queue prefix, the
marker, the visibility timeout, the region) and, with an IRSA role, the role the service account is
annotated with; on stderr, the model path for your spec and the namespace/service account the role
is limited to. Plain Python: it needs neither aws-cdk-lib nor AWS credentials.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from infra.cdk.constants import Outputs

RELOADING_PREFIX = "reloading: "


class OutputsError(ValueError):
    """The outputs file is not what `cdk deploy --outputs-file` writes for this stack."""


def stack_outputs(document: dict[str, Any], stack: str | None) -> dict[str, str]:
    """The outputs of `stack`, or of the only stack in the file."""
    if stack is not None:
        if stack not in document:
            raise OutputsError(f"expected outputs of stack {stack!r}, found stacks {sorted(document)}")
        return dict(document[stack])
    if len(document) != 1:
        raise OutputsError(f"expected the outputs of one stack (or --stack NAME), found stacks {sorted(document)}")
    return dict(next(iter(document.values())))


def kubernetes_values(outputs: dict[str, str]) -> dict[str, str]:
    """values.env as a mapping, from one stack's outputs (pure: a function of the outputs)."""
    missing = [key for key in (Outputs.TOPIC_ARN, Outputs.RELOADING_TOPIC_MODE) if key not in outputs]
    if missing:
        raise OutputsError(
            f"expected the stack outputs {missing} (is this a model-reloader stack?), found {sorted(outputs)}"
        )
    block = outputs[Outputs.RELOADING_TOPIC_MODE]
    if not block.startswith(RELOADING_PREFIX):
        raise OutputsError(f"{Outputs.RELOADING_TOPIC_MODE}: expected 'reloading: {{...}}', found {block!r}")
    reloading = json.loads(block.removeprefix(RELOADING_PREFIX))
    topic = outputs[Outputs.TOPIC_ARN]
    arn = topic.split(":")
    if len(arn) != 6 or arn[2] != "sns":
        expected = "arn:<partition>:sns:<region>:<account>:<name>"
        raise OutputsError(f"{Outputs.TOPIC_ARN}: expected {expected}, found {topic!r}")
    region = arn[3]
    values = {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "RELOADER_TOPIC_ARN": reloading["topic_arn"],
        "RELOADER_QUEUE_PREFIX": reloading["queue_prefix"],
        "RELOADER_READY_MARKER": reloading["ready_marker"],
        "RELOADER_VISIBILITY_TIMEOUT": str(reloading["visibility_timeout"]),
        "EKS_ROLE_ARN": outputs.get(Outputs.REPLICA_ROLE_ARN, "") if outputs.get(Outputs.EKS_ACCESS) == "irsa" else "",
    }
    return values


def model_path(outputs: dict[str, str]) -> str:
    return f"s3://{outputs[Outputs.BUCKET_NAME]}/{outputs[Outputs.MODELS_PREFIX]}"


def render(values: dict[str, str]) -> str:
    lines = ["# Written by `python -m infra.kubernetes_values` from the stack's outputs."]
    lines += [f"{key}={value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.kubernetes_values",
        description="Print deploy/kubernetes/base/values.env from the file `cdk deploy --outputs-file` wrote.",
    )
    parser.add_argument("outputs_file", type=Path, help="the JSON file of `cdk deploy --outputs-file`")
    parser.add_argument("--stack", help="the stack's name, when the file holds several")
    args = parser.parse_args(argv)
    try:
        outputs = stack_outputs(json.loads(args.outputs_file.read_text()), args.stack)
        values = kubernetes_values(outputs)
    except (OSError, json.JSONDecodeError, OutputsError) as error:
        print(f"kubernetes_values: {args.outputs_file}: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(render(values))
    notes = [f"model paths in your spec: {model_path(outputs)}<model>/ (or `dir: {model_path(outputs)}`)"]
    if outputs.get(Outputs.EKS_SERVICE_ACCOUNT):
        notes.append(f"the role is for {outputs[Outputs.EKS_SERVICE_ACCOUNT]} ({outputs.get(Outputs.EKS_ACCESS)})")
        if outputs.get(Outputs.EKS_ACCESS) == "irsa":
            notes.append(
                "add components/irsa to your kustomization: it annotates the service account with EKS_ROLE_ARN"
            )
    else:
        notes.append(f"no EKS role in this stack: attach {outputs.get(Outputs.REPLICA_POLICY_ARN)} to the pods' role")
    for note in notes:
        print(f"# {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
