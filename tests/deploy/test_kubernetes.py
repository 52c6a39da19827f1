"""The Kubernetes manifests under deploy/kubernetes/, rendered by `kubectl kustomize` and checked offline:
every object against the Kubernetes schemas (kubernetes-validate, strict), and what matters for this
project (probes, replica id, shutdown budget, TF Serving's flags, the shared model folder) against the code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from agent.api.http import create_app
from agent.boundaries.spec_file import load_spec
from agent.domain.settings import ReloadingSettings
from tests.support import ROOT

KUSTOMIZE = ROOT / "deploy" / "kubernetes"
OVERLAYS = ["python", "tensorflow", "tensorflow-agent", "servicemonitor", "hpa"]
COMPONENTS = ["irsa", "servicemonitor", "hpa"]
# The oldest Kubernetes EKS still supports as standard, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
KUBECTL = shutil.which("kubectl")

pytestmark = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl not found: rendering the manifests needs kubectl with kustomize built in (the machine image "
    "ships it at /usr/bin/kubectl; it is not on the package registries)",
)

# The fields of a ServiceMonitor the manifests use, written from the Prometheus Operator's CRD
# (monitoring.coreos.com/v1, operator v0.84): names, types and the duration pattern; any other field fails.
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {
                                "type": "string",
                                "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                                r"(([0-9]+)s)?(([0-9]+)ms)?)$",
                            },
                        },
                    },
                },
            },
        },
    },
}


def render(folder: Path) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"kubectl kustomize {folder} failed:\n{result.stderr}"
    return [item for item in yaml.safe_load_all(result.stdout) if item]


def composed(tmp_path: Path, overlay: str, literals: list[str] | None = None) -> Path:
    """A user's kustomization: `overlay` with every component, and values overridden by `literals`."""
    folder = tmp_path / f"composed-{overlay}"
    folder.mkdir()
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "model-reloader",
        "resources": [os.path.relpath(KUSTOMIZE / "overlays" / overlay, folder)],  # kustomize refuses absolute ones
        "components": [os.path.relpath(KUSTOMIZE / "components" / name, folder) for name in COMPONENTS],
    }
    if literals:
        kustomization["configMapGenerator"] = [{"name": "reloader-values", "behavior": "merge", "literals": literals}]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return folder


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {overlay: render(KUSTOMIZE / "overlays" / overlay) for overlay in OVERLAYS}


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [item for item in objects if item["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def env_of(item: dict[str, Any]) -> dict[str, Any]:
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in item.get("env", [])}


def values_env() -> dict[str, str]:
    lines = (KUSTOMIZE / "base" / "values.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


# -- schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", [*OVERLAYS, "composed"])
def test_every_rendered_object_validates_against_the_kubernetes_schemas(overlay, rendered, tmp_path):
    import kubernetes_validate

    objects = render(composed(tmp_path, "tensorflow")) if overlay == "composed" else rendered[overlay]
    for item in objects:
        where = f"{overlay}: {item['kind']}/{item['metadata']['name']}"
        if item["kind"] == "ServiceMonitor":  # a CRD: kubernetes-validate has no schema for it
            jsonschema.validate(item, SERVICE_MONITOR_SCHEMA)
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(item, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                raise AssertionError(f"{where} is invalid for Kubernetes {version}: {error.message}") from None


def test_a_typo_in_a_manifest_fails_validation():
    import kubernetes_validate

    deployment = one(render(KUSTOMIZE / "overlays" / "python"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    monitor = one(render(KUSTOMIZE / "overlays" / "servicemonitor"), "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)


# -- what the manifests must agree on with the code ------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_point_at_the_real_endpoints_and_port(overlay, rendered):
    reloader = container(rendered[overlay], "reloader")
    args = reloader["args"]
    port = int(args[args.index("--port") + 1])
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert {p["name"]: p["containerPort"] for p in reloader["ports"]}["http"] == port
    routes = {route.path for route in create_app(None, None).routes}  # type: ignore[attr-defined]
    assert reloader["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert reloader["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"/readyz", "/healthz", "/metrics"} <= routes
    annotations = one(rendered[overlay], "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] in routes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_replica_id_is_the_pod_name(overlay, rendered):
    env = env_of(container(rendered[overlay], "reloader"))
    assert env["RELOADER_REPLICA_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_grace_period_exceeds_pre_stop_drain_and_shutdown_deadline(overlay, rendered):
    spec = one(rendered[overlay], "Deployment")["spec"]["template"]["spec"]
    reloader = container(rendered[overlay], "reloader")
    env = {**values_env(), **env_of(reloader)}
    fields = ReloadingSettings.model_fields
    drain = float(env.get("RELOADER_SHUTDOWN_DRAIN", fields["shutdown_drain"].default))
    deadline = float(env.get("RELOADER_SHUTDOWN_TIMEOUT", fields["shutdown_timeout"].default))
    command = reloader["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] > float(command[1]) + drain + deadline


def test_every_setting_named_in_the_manifests_exists(rendered):
    settings = {f"RELOADER_{name.upper()}" for name in ReloadingSettings.model_fields}
    named = set(values_env())
    for overlay in OVERLAYS:
        named |= set(env_of(container(rendered[overlay], "reloader")))
    unknown = {name for name in named if name.startswith("RELOADER_")} - settings
    assert not unknown, f"not a setting of the reloader: {sorted(unknown)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_model_dir_is_a_bounded_empty_dir(overlay, rendered):
    spec = one(rendered[overlay], "Deployment")["spec"]["template"]["spec"]
    reloader = container(rendered[overlay], "reloader")
    mounts = {m["name"]: m["mountPath"] for m in reloader["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert env_of(reloader)["RELOADER_MODEL_DIR"] == mounts["models"]
    assert volumes["models"]["emptyDir"]["sizeLimit"]
    assert reloader["resources"]["limits"]["ephemeral-storage"]
    assert reloader["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True


def test_the_example_specs_are_valid_and_use_the_shared_folder(tmp_path):
    for overlay, kind in (("base", "python"), ("overlays/tensorflow", "tensorflow")):
        spec = load_spec(KUSTOMIZE / overlay / "api" / "cortex.yaml")
        assert spec.api.handler.type == kind
        assert spec.handler_path.is_file()


def readme_tfserving_flags() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"tensorflow_model_server \\\n(.*?)\n```", readme, re.S)
    assert block, "README: the tensorflow_model_server command block"
    return [line.strip().rstrip("\\").strip() for line in block.group(1).splitlines()]


@pytest.mark.parametrize("overlay", ["tensorflow", "tensorflow-agent"])
def test_tf_serving_runs_with_exactly_the_readme_flags_and_reads_what_the_agent_writes(overlay, rendered):
    objects = rendered[overlay]
    tfserving = container(objects, "tfserving")
    reloader = container(objects, "reloader")
    assert tfserving["command"] == ["/usr/bin/tensorflow_model_server"]  # not the image's entrypoint
    assert tfserving["args"] == readme_tfserving_flags()
    port = next(flag for flag in tfserving["args"] if flag.startswith("--port="))
    assert env_of(reloader)["RELOADER_TFSERVING_ADDRESS"] == "127.0.0.1:" + port.split("=")[1]
    # both mount the models folder at one path, so TF Serving's base_path is the agent's model_dir
    tf_mounts = {m["name"]: m["mountPath"] for m in tfserving["volumeMounts"]}
    reloader_mounts = {m["name"]: m["mountPath"] for m in reloader["volumeMounts"]}
    assert tf_mounts["models"] == reloader_mounts["models"] == env_of(reloader)["RELOADER_MODEL_DIR"]
    config_file = next(flag for flag in tfserving["args"] if flag.startswith("--model_config_file="))
    assert Path(config_file.split("=")[1]).parent == Path(tf_mounts["tfserving-config"])
    config_map = next(item for item in objects if item["metadata"]["name"].startswith("tfserving-config"))
    assert config_map["data"]["models.config"].strip() == "model_config_list {}"


def test_one_agent_per_tf_serving(rendered):
    assert container(rendered["tensorflow"], "reloader")["args"][0] == "serve"
    assert container(rendered["tensorflow-agent"], "reloader")["args"][0] == "agent"
    service = one(rendered["tensorflow-agent"], "Service")
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "grpc"}


def test_hpa_replaces_the_fixed_replica_count(rendered):
    assert "replicas" not in one(rendered["hpa"], "Deployment")["spec"]
    hpa = one(rendered["hpa"], "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(rendered["hpa"], "Deployment")["metadata"]["name"]


def test_irsa_annotates_the_service_account_with_the_role_from_the_values(tmp_path):
    role = "arn:aws:iam::123456789012:role/ModelReloader-EksReplicaRole"
    objects = render(composed(tmp_path, "python", [f"EKS_ROLE_ARN={role}"]))
    account = one(objects, "ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_selectors_select_the_pods(rendered):
    objects = rendered["python"]
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for kind, selector in (
        ("Service", one(objects, "Service")["spec"]["selector"]),
        ("PodDisruptionBudget", one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]),
    ):
        assert selector and selector.items() <= labels.items(), kind
