"""The replicas' role on EKS: the replica policy, assumable only by the replicas' service account.

Two ways, as EKS offers them: IAM roles for service accounts (IRSA: the cluster's OIDC provider, limited
to `system:serviceaccount:<namespace>:<name>`, annotated on the service account), or EKS Pod Identity
(`pods.eks.amazonaws.com` with `sts:TagSession`, limited by the session tags it sets to the cluster,
namespace and service account, and bound by a Pod Identity association the stack creates).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_eks as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.cdk.config import StackConfig

IRSA = "irsa"
POD_IDENTITY = "pod-identity"
STS_AUDIENCE = "sts.amazonaws.com"
POD_IDENTITY_SERVICE = "pods.eks.amazonaws.com"


def eks_access(config: StackConfig) -> str | None:
    if config.eks_oidc_issuer:
        return IRSA
    if config.eks_pod_identity_cluster:
        return POD_IDENTITY
    return None


class EksReplicaRole(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, policy: iam.IManagedPolicy) -> None:
        super().__init__(scope, construct_id)
        self.access = eks_access(config)
        namespace, account = config.eks_namespace, config.eks_service_account
        if self.access == IRSA:
            assert config.eks_oidc_issuer is not None
            issuer = config.eks_oidc_issuer.removeprefix("https://")
            provider_arn = cdk.Stack.of(self).format_arn(
                service="iam",
                region="",
                resource="oidc-provider",
                resource_name=issuer,
                arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
            )
            principal: iam.IPrincipal = iam.WebIdentityPrincipal(
                provider_arn,
                conditions={
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{account}",
                        f"{issuer}:aud": STS_AUDIENCE,
                    }
                },
            )
        else:
            cluster = config.eks_pod_identity_cluster
            principal = iam.SessionTagsPrincipal(
                iam.ServicePrincipal(POD_IDENTITY_SERVICE).with_conditions(
                    {
                        "StringEquals": {
                            "aws:RequestTag/eks-cluster-name": cluster,
                            "aws:RequestTag/kubernetes-namespace": namespace,
                            "aws:RequestTag/kubernetes-service-account": account,
                        }
                    }
                )
            )
        self.role = iam.Role(
            self,
            "Role",
            description=f"model-reloader replicas on EKS ({self.access}): {namespace}/{account}",
            assumed_by=principal,
            managed_policies=[policy],
        )
        if self.access == POD_IDENTITY:
            assert config.eks_pod_identity_cluster is not None
            eks.CfnPodIdentityAssociation(
                self,
                "Association",
                cluster_name=config.eks_pod_identity_cluster,
                namespace=namespace,
                service_account=account,
                role_arn=self.role.role_arn,
            )
