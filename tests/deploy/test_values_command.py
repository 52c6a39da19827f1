"""`python -m infra.kubernetes_values`: from the stack's outputs to deploy/kubernetes/base/values.env."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.cdk.constants import Outputs
from infra.kubernetes_values import OutputsError, kubernetes_values
from tests.deploy.test_kubernetes import KUBECTL, KUSTOMIZE, one, render
from tests.support import ROOT

ROLE = "arn:aws:iam::123456789012:role/ModelReloader-EksRoleE0B5E322-AbC"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ModelReloader-EventsTopic-XyZ"
# What `cdk deploy --outputs-file` writes for a stack deployed with -c eksOidcIssuer=...
OUTPUTS = {
    "ModelReloader": {
        Outputs.BUCKET_NAME: "reloader-models-123456789012-eu-west-1",
        Outputs.MODELS_PREFIX: "models/",
        Outputs.TOPIC_ARN: TOPIC,
        Outputs.QUEUE_PREFIX: "reloader",
        Outputs.REPLICA_POLICY_ARN: "arn:aws:iam::123456789012:policy/ModelReloader-ReplicasPolicy",
        Outputs.REPLICA_ROLE_ARN: ROLE,
        Outputs.EKS_ACCESS: "irsa",
        Outputs.EKS_SERVICE_ACCOUNT: "model-reloader/reloader",
        Outputs.RELOADING_TOPIC_MODE: "reloading: "
        + json.dumps(
            {"topic_arn": TOPIC, "queue_prefix": "reloader", "ready_marker": "_READY", "visibility_timeout": 300}
        ),
    }
}


def run(outputs_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.kubernetes_values", str(outputs_file), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_values_are_the_stacks_outputs():
    values = kubernetes_values(OUTPUTS["ModelReloader"])
    assert values["RELOADER_TOPIC_ARN"] == TOPIC
    assert values["AWS_REGION"] == values["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert values["EKS_ROLE_ARN"] == ROLE
    # with Pod Identity the association binds the role: no annotation
    pod_identity = {**OUTPUTS["ModelReloader"], Outputs.EKS_ACCESS: "pod-identity"}
    assert kubernetes_values(pod_identity)["EKS_ROLE_ARN"] == ""


def test_outputs_of_another_stack_are_refused_naming_what_was_expected(tmp_path):
    with pytest.raises(OutputsError, match="TopicArn"):
        kubernetes_values({"SomethingElse": "x"})
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({**OUTPUTS, "Other": {}}))
    result = run(path)
    assert result.returncode == 2
    assert "expected the outputs of one stack (or --stack NAME)" in result.stderr


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not found (see tests/deploy/test_kubernetes.py)")
def test_the_written_values_reach_the_pods_and_the_service_account(tmp_path):
    # GIVEN a copy of the manifests, and the command's output as their values.env
    outputs_file = tmp_path / "cdk-outputs.json"
    outputs_file.write_text(json.dumps(OUTPUTS))
    result = run(outputs_file)
    assert result.returncode == 0, result.stderr
    assert "s3://reloader-models-123456789012-eu-west-1/models/" in result.stderr
    manifests = tmp_path / "kubernetes"
    shutil.copytree(KUSTOMIZE, manifests)
    (manifests / "base" / "values.env").write_text(result.stdout)
    user = manifests / "overlays" / "mine"
    user.mkdir()
    (user / "kustomization.yaml").write_text("resources: [../python]\ncomponents: [../../components/irsa]\n")
    # WHEN rendered THEN the pods get the topic and region, and the service account the role
    objects = render(user)
    config_map = next(item for item in objects if item["metadata"]["name"].startswith("reloader-values"))
    assert config_map["data"]["RELOADER_TOPIC_ARN"] == TOPIC and config_map["data"]["AWS_REGION"] == "eu-west-1"
    reloader = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert reloader["envFrom"] == [{"configMapRef": {"name": config_map["metadata"]["name"]}}]
    assert one(objects, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE
