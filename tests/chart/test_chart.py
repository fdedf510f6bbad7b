"""The Helm chart: lint-clean, valid Kubernetes objects, the shared RBAC, the same CRD."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from emotivoice_operator import settings
from tests.support.cluster import REPO, build_binaries

CHART = REPO / "charts" / "emotivoice-operator"
K8S_VERSION = "1.34"
# The cluster version helm renders for (its default, 1.20, is older than the chart allows).
KUBE_VERSION = "1.34.4"
# Every monitoring object the chart can render (alerts: tests/chart/test_alerts.py).
MONITORING = [
    "metrics.service.enabled=true",
    "metrics.serviceMonitor.enabled=true",
    "metrics.serverPodMonitor.enabled=true",
    "metrics.prometheusRule.enabled=true",
    "dashboard.enabled=true",
]


@pytest.fixture(scope="module")
def helm() -> Path:
    return build_binaries("helm") / "helm"


def _template(helm: Path, *values: str) -> list[dict[str, Any]]:
    sets = [arg for v in values for arg in ("--set", v)]
    out = subprocess.run(
        [str(helm), "template", "evo", str(CHART), "--kube-version", KUBE_VERSION, "--namespace", "evo-system", "--include-crds", *sets],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize("name", ["emotivoiceservice.yaml", "emotivoicecalendar.yaml"])
def test_chart_crd_is_the_crd(name: str) -> None:
    """`make sync-crd` copies them; this fails when someone forgets."""
    assert (CHART / "crds" / name).read_bytes() == (REPO / "crds" / name).read_bytes()


def test_helm_lint_is_clean(helm: Path) -> None:
    for values in (
        [],
        ["watchNamespaces={a,b}"],
        ["replicaCount=2", "peering.enabled=true"],
        MONITORING,
    ):
        sets = [arg for v in values for arg in ("--set", v)]
        result = subprocess.run(
            [str(helm), "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), *sets],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["watchNamespaces={voice,speech}"],
        ["replicaCount=2", "peering.enabled=true"],
        ["metrics.service.enabled=true"],
        ["watchNamespacePatterns={team-*}"],
        MONITORING,
    ],
    ids=["cluster-wide", "namespaced", "peering", "metrics-service", "patterns", "monitoring"],
)
def test_rendered_objects_validate_against_kubernetes_schemas(
    helm: Path, values: list[str]
) -> None:
    docs = _template(helm, *values)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ServiceAccount", "CustomResourceDefinition"} <= kinds
    for doc in docs:
        if doc["apiVersion"].startswith(("kopf.dev/", "monitoring.coreos.com/")):
            continue  # kopf's own peering objects: validated by their CRD, not Kubernetes' schemas
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {str(exc).splitlines()[0]}")


def test_rbac_is_the_shared_rules_file(helm: Path) -> None:
    rules = yaml.safe_load((CHART / "files" / "operator-rules.yaml").read_text())
    (cluster_role,) = _cluster_roles(_template(helm), calendars=False)
    assert cluster_role["rules"] == rules
    roles = [d for d in _template(helm, "watchNamespaces={voice,speech}") if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["speech", "voice"]
    assert all(r["rules"] == rules for r in roles)
    assert not _cluster_roles(_template(helm, "watchNamespaces={voice}"), calendars=False)


def _cluster_roles(docs: list[dict[str, Any]], calendars: bool) -> list[dict[str, Any]]:
    """The ClusterRoles rendered: the calendars' own, or the others."""
    return [
        d
        for d in docs
        if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-calendars") == calendars
    ]


@pytest.mark.parametrize(
    "values", [[], ["watchNamespaces={voice}"], ["watchNamespacePatterns={team-*}"]]
)
def test_calendars_are_readable_cluster_wide_whatever_the_namespaces_watched(
    helm: Path, values: list[str]
) -> None:
    """EmotiVoiceCalendars are cluster-scoped: only a ClusterRole grants them, read-only, also
    when the operator's other permissions are Roles in the namespaces it watches."""
    docs = _template(helm, *values)
    (role,) = _cluster_roles(docs, calendars=True)
    assert role["rules"] == [
        {"apiGroups": ["tts.emotivoice.io"], "resources": ["emotivoicecalendars"],
         "verbs": ["get", "list", "watch"]}
    ]  # fmt: skip
    (binding,) = [
        d for d in docs
        if d["kind"] == "ClusterRoleBinding" and d["roleRef"]["name"] == role["metadata"]["name"]
    ]  # fmt: skip
    assert binding["subjects"][0]["name"] == "evo-emotivoice-operator"
    crds = {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert "emotivoicecalendars.tts.emotivoice.io" in crds


def test_least_privilege_rules() -> None:
    rules = yaml.safe_load((CHART / "files" / "operator-rules.yaml").read_text())
    resources = {r for rule in rules for r in rule["resources"]}
    assert "secrets" not in resources and "*" not in resources
    verbs = {v for rule in rules for v in rule["verbs"]}
    assert "*" not in verbs and "escalate" not in verbs and "bind" not in verbs
    deletable = {r for rule in rules if "delete" in rule["verbs"] for r in rule["resources"]}
    # The Service is never deleted by the operator itself. Claims and workloads are (issue 17:
    # per-replica claims of replicas that never come back, the workload of the scope left);
    # the admission policy narrows that to objects an EmotiVoiceService owns and to the
    # StatefulSet's model-cache claims (test_the_admission_policy_narrows_deletes).
    assert "services" not in deletable
    assert deletable & {"persistentvolumeclaims", "deployments", "statefulsets"} == {
        "persistentvolumeclaims",
        "deployments",
        "statefulsets",
    }


def test_the_admission_policy_narrows_deletes(helm: Path) -> None:
    (policy,) = [d for d in _template(helm) if d["kind"] == "ValidatingAdmissionPolicy"]
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    # Only a per-replica claim (the StatefulSet controller's name for it) with our label.
    assert "request.operation == 'DELETE'" in variables["replicaCache"]
    assert "startsWith('model-cache-')" in variables["replicaCache"]
    (ownership,) = [v for v in policy["spec"]["validations"] if "ownedBefore" in v["expression"]]
    assert "variables.replicaCache" in ownership["expression"]


def test_operator_pod_is_hardened(helm: Path) -> None:
    (dep,) = [d for d in _template(helm) if d["kind"] == "Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["EMOTIVOICE_SERVER_IMAGE"] == settings.DEFAULT_SERVER_IMAGE
    assert container["image"] == settings.DEFAULT_PREWARM_IMAGE


def test_one_version_for_the_package_the_chart_and_the_default_images() -> None:
    """pyproject.toml's version is the release; the chart's appVersion (which tags the images it
    deploys) and the operator's built-in defaults must be the same one."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert project["name"] == settings.DISTRIBUTION
    assert chart["appVersion"] == project["version"] == settings.VERSION
    for image in (settings.DEFAULT_SERVER_IMAGE, settings.DEFAULT_PREWARM_IMAGE):
        assert image.endswith(f":{project['version']}")
    assert f"{settings.DEFAULT_SERVER_IMAGE}-cpu" == settings.DEFAULT_SERVER_CPU_IMAGE


def _operator_env(helm: Path, *values: str) -> dict[str, str]:
    (dep,) = [d for d in _template(helm, *values) if d["kind"] == "Deployment"]
    return {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_the_chart_hands_the_operator_both_server_variants(helm: Path) -> None:
    """Defaults agree with the operator's own; the CPU tag follows the CUDA tag unless set."""
    env = _operator_env(helm)
    assert env["EMOTIVOICE_SERVER_IMAGE"] == settings.DEFAULT_SERVER_IMAGE
    assert env["EMOTIVOICE_SERVER_CPU_IMAGE"] == settings.DEFAULT_SERVER_CPU_IMAGE
    env = _operator_env(helm, "serverImage.tag=v7")
    assert env["EMOTIVOICE_SERVER_CPU_IMAGE"] == "emotivoice/server:v7-cpu"
    env = _operator_env(helm, "serverImage.tag=v7", "serverImage.cpuTag=slim")
    assert (env["EMOTIVOICE_SERVER_IMAGE"], env["EMOTIVOICE_SERVER_CPU_IMAGE"]) == (
        "emotivoice/server:v7",
        "emotivoice/server:slim",
    )
    parsed = settings.OperatorSettings.from_env(env)
    assert (parsed.server_image, parsed.server_cpu_image) == (
        "emotivoice/server:v7",
        "emotivoice/server:slim",
    )


def test_several_replicas_without_peering_is_refused(helm: Path) -> None:
    result = subprocess.run(
        [str(helm), "template", "evo", str(CHART), "--kube-version", KUBE_VERSION, "--set", "replicaCount=3"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "peering.enabled" in result.stderr


def test_values_schema_rejects_unknown_keys(helm: Path) -> None:
    result = subprocess.run(
        [str(helm), "template", "evo", str(CHART), "--kube-version", KUBE_VERSION, "--set", "replicas=3"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "replicas" in result.stderr


def _leaf_keys(values: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in ("resources",):
            keys |= _leaf_keys(value, f"{path}.")
        else:
            keys.add(path)
    return keys


def test_install_docs_configuration_table_matches_values() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    install = (REPO / "docs" / "install.md").read_text()
    table = install.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    documented = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    assert documented == _leaf_keys(values)


def test_the_admission_policy_binds_the_operators_own_identity(helm: Path) -> None:
    """Issue 16: RBAC cannot limit create by name; the policy limits what the operator's
    ServiceAccount (and nobody else) may write. On by default, off when asked."""
    docs = _template(helm)
    (policy,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    (binding,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    (condition,) = policy["spec"]["matchConditions"]
    assert "system:serviceaccount:evo-system:evo-emotivoice-operator" in condition["expression"]
    rules = yaml.safe_load((CHART / "files" / "operator-rules.yaml").read_text())
    writable = {
        r for rule in rules if {"create", "patch"} & set(rule["verbs"]) for r in rule["resources"]
    }
    matched = {
        r for rule in policy["spec"]["matchConstraints"]["resourceRules"] for r in rule["resources"]
    }
    # Every kind the operator may create is under the policy (its own resource, events and the
    # scale subresource excepted).
    assert writable - matched <= {
        "emotivoiceservices",
        "emotivoiceservices/status",
        "events",
        "deployments/scale",
        "statefulsets/scale",
    }
    off = _template(helm, "admissionPolicy.enabled=false")
    assert not any(d["kind"].startswith("ValidatingAdmissionPolicy") for d in off)


def test_namespace_patterns_keep_a_cluster_role_that_follows_namespaces(helm: Path) -> None:
    """Globs cannot name Roles in advance: a ClusterRole, plus the namespace watch kopf needs to
    follow the matching namespaces; the operator is told each pattern."""
    docs = _template(helm, "watchNamespacePatterns={team-*,!team-old}")
    (cluster_role,) = _cluster_roles(docs, calendars=False)
    assert {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]} in (
        cluster_role["rules"]
    )
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-*" in args and "--namespace=!team-old" in args
    # Without patterns the operator may not list namespaces.
    (plain,) = _cluster_roles(_template(helm), calendars=False)
    assert not any("namespaces" in r["resources"] for r in plain["rules"])


@pytest.mark.parametrize(
    ("values", "named"),
    [
        (["watchNamespaces={voice}", "watchNamespacePatterns={team-*}"], "not both"),
        (["peering.enabled=true", "watchNamespacePatterns={team-*}"], "peering.enabled"),
    ],
)
def test_namespace_patterns_refuse_what_they_cannot_do(
    helm: Path, values: list[str], named: str
) -> None:
    sets = [arg for v in values for arg in ("--set", v)]
    result = subprocess.run(
        [str(helm), "template", "evo", str(CHART), "--kube-version", KUBE_VERSION, *sets],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and named in result.stderr


def test_the_monitors_label_series_as_the_alerts_join_them(helm: Path) -> None:
    """docs/reference/alerts.md: the operator's namespace/name kept, the servers' service from
    their instance label, in the namespaces the operator watches."""
    docs = {d["kind"]: d for d in _template(helm, *MONITORING)}
    assert docs["ServiceMonitor"]["spec"]["endpoints"][0]["honorLabels"] is True
    pods = docs["PodMonitor"]["spec"]
    assert pods["namespaceSelector"] == {"any": True}
    [endpoint] = pods["podMetricsEndpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["relabelings"] == [
        {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
         "targetLabel": "service"}
    ]  # fmt: skip
    assert pods["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "emotivoice",
        "app.kubernetes.io/component": "server",
    }
    namespaced = {d["kind"]: d for d in _template(helm, *MONITORING, "watchNamespaces={a,b}")}
    assert namespaced["PodMonitor"]["spec"]["namespaceSelector"] == {"matchNames": ["a", "b"]}
