"""The replicas' role on EKS: IRSA (trusted by the cluster's OIDC provider, for one service account) or
EKS Pod Identity (trusted by pods.eks.amazonaws.com with sts:TagSession, and its association)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.cdk.config import ConfigError, StackConfig
from infra.cdk.constants import Outputs
from tests.infra.synthesis import Template, synth
from tests.infra.test_stack import only, resources

ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789ABCDEF0123456789"
IRSA = {"eksOidcIssuer": f"https://{ISSUER}"}
POD_IDENTITY = {"eksPodIdentityCluster": "prod", "eksNamespace": "ml", "eksServiceAccount": "models"}


def replica_policy(template: Template) -> str:
    return next(iter(resources(template, "AWS::IAM::ManagedPolicy")))


def eks_roles(template: Template) -> dict[str, Any]:
    roles = resources(template, "AWS::IAM::Role").items()
    return {key: role for key, role in roles if "on EKS" in role["Properties"].get("Description", "")}


def outputs(template: Template) -> dict[str, Any]:
    return {key: value["Value"] for key, value in template.to_json()["Outputs"].items()}


def test_irsa_role_is_assumable_only_by_the_service_account_through_the_oidc_provider() -> None:
    # GIVEN / WHEN the app synthesises with the cluster's OIDC issuer (cdk-nag runs: no unacknowledged finding)
    template = synth(**IRSA)
    ((role_id, role),) = eks_roles(template).items()
    # THEN its trust is the OIDC provider, for exactly system:serviceaccount:<namespace>:<name>, audience STS
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    provider = statement["Principal"]["Federated"]["Fn::Join"][1]
    assert provider[-1] == f":oidc-provider/{ISSUER}"
    assert statement["Condition"] == {
        "StringEquals": {
            f"{ISSUER}:sub": "system:serviceaccount:model-reloader:reloader",
            f"{ISSUER}:aud": "sts.amazonaws.com",
        }
    }
    # AND it carries the replica policy, and its ARN is the output the IRSA annotation takes
    assert role["Properties"]["ManagedPolicyArns"] == [{"Ref": replica_policy(template)}]
    found = outputs(template)
    assert found[Outputs.REPLICA_ROLE_ARN] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert found[Outputs.EKS_ACCESS] == "irsa"
    assert found[Outputs.EKS_SERVICE_ACCOUNT] == "model-reloader/reloader"
    assert not resources(template, "AWS::EKS::PodIdentityAssociation")


def test_pod_identity_role_trusts_the_eks_service_with_tag_session_and_is_associated() -> None:
    template = synth(**POD_IDENTITY)
    ((role_id, role),) = eks_roles(template).items()
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
    # the session tags Pod Identity sets limit the role to this cluster, namespace and service account
    assert statement["Condition"] == {
        "StringEquals": {
            "aws:RequestTag/eks-cluster-name": "prod",
            "aws:RequestTag/kubernetes-namespace": "ml",
            "aws:RequestTag/kubernetes-service-account": "models",
        }
    }
    assert role["Properties"]["ManagedPolicyArns"] == [{"Ref": replica_policy(template)}]
    association = only(template, "AWS::EKS::PodIdentityAssociation")["Properties"]
    assert association == {
        "ClusterName": "prod",
        "Namespace": "ml",
        "ServiceAccount": "models",
        "RoleArn": {"Fn::GetAtt": [role_id, "Arn"]},
    }
    assert outputs(template)[Outputs.EKS_ACCESS] == "pod-identity"


@pytest.mark.parametrize(
    ("context", "named"),
    [
        pytest.param({**IRSA, "eksPodIdentityCluster": "prod"}, "eksOidcIssuer and eksPodIdentityCluster", id="both"),
        pytest.param({**IRSA, "replicaRoleService": "ec2.amazonaws.com"}, "replicaRoleService and", id="service"),
        pytest.param({"eksOidcIssuer": "oidc.eks.example/id/1"}, "eksOidcIssuer", id="issuer-without-https"),
        pytest.param({**POD_IDENTITY, "eksNamespace": "Not_A_Namespace"}, "eksNamespace", id="bad-namespace"),
    ],
)
def test_bad_eks_context_stops_synthesis_naming_the_key(context: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        StackConfig.from_context(context.get)
