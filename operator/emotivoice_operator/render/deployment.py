"""The server workload: an init container fills the model cache, the server loads and warms up.

A Deployment for the Shared and Ephemeral cache scopes; a StatefulSet for PerReplica, whose
volumeClaimTemplates give each ordinal its own claim, kept across scale-down, so the replica a
window brings back binds the claim (and the verified model) it had. Trade-offs of the
StatefulSet (docs/concepts.md, "Cache scopes"): pods start in parallel (podManagementPolicy
Parallel, or a window's replicas would start one after another), and a rollout replaces one pod
at a time without a surge pod (StatefulSets cannot surge), each replacement starting on its own
warm cache.

Probe design (why three): the server binds its port at once and answers ``/health`` while it
loads, but ``/ready`` only after load and warm-up. The startup probe watches ``/ready`` for up to
``startupTimeoutSeconds``, and Kubernetes holds liveness back until it succeeds, so a slow load
is never killed by liveness; a load that hangs past the timeout is restarted.

Leaving (README, "When pods leave"): the server container's preStop sleeps ``drainSeconds``
while the pod still accepts (kube-proxy on other nodes learns of the deletion late), then the
kubelet sends SIGTERM and the server drains for at most its graceful timeout. The grace period
covers both, plus a margin: ``termination_grace_seconds``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from emotivoice_fetch import report as fetch_report
from emotivoice_fetch.config import ACCESS_KEY_ENV, EXPECTED_SHA256_ENV, SECRET_KEY_ENV
from emotivoice_operator.crd.spec import EmotiVoiceServiceSpec
from emotivoice_operator.render import labels, names
from emotivoice_operator.render.context import RenderContext
from emotivoice_operator.render.expansion import literal_args, literal_env
from emotivoice_operator.render.security import container_security_context, pod_security_context
from emotivoice_operator.render.storage import (
    cache_volume,
    replica_claim_template,
    retention_policy,
)
from emotivoice_server.settings import GRACEFUL_TIMEOUT_S

# Every second: the pod turns Ready at most a second after the server's own /ready does (at 5 s
# it lagged 2 s on average on a real kubelet); a probe is one local HTTP GET, and liveness
# waits for the startup probe, so the budget (startupTimeoutSeconds) is unchanged.
STARTUP_PROBE_PERIOD_SECONDS = 1
# Every second too, for a kubelet restart on nodes before Kubernetes v1.35: such a kubelet
# reports every container not ready until its first readiness probe (v1.34 pkg/kubelet/prober:
# worker.go's initial result is Failure, prober_manager.go's UpdatePodStatus says not ready while
# no probe has run), and it delays each worker's first probe by a random part of the period
# (worker.go's run), so the pods leave the Service's endpoints for up to a period (v1.35 keeps
# readiness across the restart: KEP-4781). /ready is a local GET of a flag (it answers 503 while
# loading or draining only, never under load), so a probe a second costs nothing. The failure
# budget stays READINESS_FAILURE_BUDGET_SECONDS (10 s, as at 5 s x 2): a server slow to answer
# under load is not dropped sooner than before.
READINESS_PROBE_PERIOD_SECONDS = 1
READINESS_FAILURE_BUDGET_SECONDS = 10
GPU_RESOURCE = "nvidia.com/gpu"
# The fetch step converts the released weights once, for the precision the server will load:
# emotivoice_tts.convert's convert_fp32/fp16/bf16 (it imports torch, which the operator's image
# lacks, so the name is spelled here; tests/operator/test_fetch_contract.py loads every one).
CONVERT_HOOK = "emotivoice_tts.convert:convert_{precision}"
# After the server's graceful timeout: the master's own exit and the worker's exit hook (the prompt
# cache saved), so the kubelet's SIGKILL never races either (before drainSeconds: 30 = 20 + 10).
TERMINATION_MARGIN_SECONDS = 10


def termination_grace_seconds(spec: EmotiVoiceServiceSpec) -> int:
    """The pod's terminationGracePeriodSeconds: the preStop sleep counts against it too, then the
    server's graceful timeout (``emotivoice_server.settings.GRACEFUL_TIMEOUT_S``, its one home;
    that module imports nothing heavy), then the margin."""
    return spec.server.drain_seconds + GRACEFUL_TIMEOUT_S + TERMINATION_MARGIN_SECONDS


def _lifecycle(spec: EmotiVoiceServiceSpec) -> dict[str, Any]:
    """The drain period as the kubelet's own sleep action (no shell or binary in the image;
    on by default since Kubernetes 1.30, GA in 1.34). With 0, no preStop at all: a sleep of 0
    needs a newer feature gate and would do nothing anyway."""
    seconds = spec.server.drain_seconds
    if seconds <= 0:
        return {}
    return {"lifecycle": {"preStop": {"sleep": {"seconds": seconds}}}}


def server_image(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> str:
    """The spec's image, else the operator's default variant for the pod: CUDA with GPUs, the
    CPU variant (GBs smaller to pull on every new node) without."""
    if spec.server.image:
        return spec.server.image
    if spec.server.gpus == 0 and ctx.default_server_cpu_image:
        return ctx.default_server_cpu_image
    return ctx.default_server_image


def prewarm_image(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> str:
    """The pre-warm job needs a Kubernetes client and HTTP, not torch: the operator's image
    (~150 MB), so a pre-warm never pulls the multi-GB server image onto a node."""
    return ctx.prewarm_image or server_image(spec, ctx)


def precision(spec: EmotiVoiceServiceSpec) -> str:
    """``auto`` means half precision where it pays (GPU) and full precision on CPU."""
    if spec.model.precision != "auto":
        return spec.model.precision
    return "fp16" if spec.server.gpus > 0 else "fp32"


def fetch_args(spec: EmotiVoiceServiceSpec) -> list[str]:
    """The init container's ``emotivoice-fetch`` arguments; tests/operator/test_fetch_contract.py
    reads every example's through the fetch CLI's own parser and config."""
    source = spec.model.source
    args = ["--source", source.uri, "--dest", names.model_dir(source.uri)]
    if source.endpoint:
        args += ["--endpoint-url", source.endpoint]
    args += ["--region", source.region]
    if source.uses_path_style:
        args.append("--path-style")
    if source.checksum_manifest:
        args += ["--manifest", source.checksum_manifest]
    args += ["--concurrency", str(source.concurrency)]
    if spec.model.cache.durability:  # unset: the fetch step's own default
        args += ["--durability", spec.model.cache.durability]
    if spec.model.load_format == "converted":
        args += ["--after-verify", CONVERT_HOOK.format(precision=precision(spec))]
    # The kubelet hands this file to the operator as the container's termination message.
    args += ["--report", fetch_report.TERMINATION_LOG]
    return args


def _fetch_env(spec: EmotiVoiceServiceSpec) -> list[dict[str, Any]]:
    source = spec.model.source
    env: list[dict[str, Any]] = []
    secret = source.credentials_secret
    if secret:
        for var, key in (
            (ACCESS_KEY_ENV, secret.access_key_id_key),
            (SECRET_KEY_ENV, secret.secret_access_key_key),
        ):
            env.append(
                {"name": var, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": key}}}
            )
    if source.checksums:
        env.append(
            {
                "name": EXPECTED_SHA256_ENV,
                "value": json.dumps(source.checksums, sort_keys=True),
            }
        )
    return env


def warmup_env(spec: EmotiVoiceServiceSpec) -> dict[str, Any]:
    """The warm-up plan, read by the server at start and by the pre-warm job's priming."""
    warmup = spec.server.warmup
    fields = {"phrases": warmup.phrases, "voices": warmup.voices, "prompts": warmup.prompts}
    # What the user left unset is left out: the server's own defaults apply (one home for them).
    plan = {k: v for k, v in fields.items() if v is not None}
    return {"name": "EMOTIVOICE_WARMUP", "value": json.dumps(plan, sort_keys=True)}


def _server_env(spec: EmotiVoiceServiceSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        warmup_env(spec),
        # The root file system is read-only; caches (jieba's dictionary) go to the /tmp emptyDir.
        {"name": "HOME", "value": "/tmp"},
    ]
    # Every answer names its pool (a Service may send traffic to a fallback's pods): the pod's
    # own instance label, so the server reports what the selector matched.
    pool = {
        "name": names.SERVER_POOL_ENV,
        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{names.LABEL_INSTANCE}']"}},
    }
    # User env last: a user value for the same name wins, as in a plain pod spec (and, as
    # there, its $(VAR) references are expanded: see expansion.py).
    return [*literal_env(env), pool, *(dict(e) for e in spec.server.env or [])]


def _resources(spec: EmotiVoiceServiceSpec) -> dict[str, Any]:
    res = spec.server.resources
    limits = {k: str(v) for k, v in sorted(res.limits.items())}
    if spec.server.gpus:
        limits[GPU_RESOURCE] = str(spec.server.gpus)
    return {"requests": {k: str(v) for k, v in sorted(res.requests.items())}, "limits": limits}


def _probes(spec: EmotiVoiceServiceSpec) -> dict[str, Any]:
    def http(path: str, **timing: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": names.HTTP_PORT_NAME}, **timing}

    startup_failures = math.ceil(spec.server.startup_timeout_seconds / STARTUP_PROBE_PERIOD_SECONDS)
    return {
        "startupProbe": http(
            "/ready",
            periodSeconds=STARTUP_PROBE_PERIOD_SECONDS,
            timeoutSeconds=3,
            failureThreshold=startup_failures,
        ),
        "readinessProbe": http(
            "/ready",
            periodSeconds=READINESS_PROBE_PERIOD_SECONDS,
            timeoutSeconds=3,
            failureThreshold=READINESS_FAILURE_BUDGET_SECONDS // READINESS_PROBE_PERIOD_SECONDS,
        ),
        "livenessProbe": http("/health", periodSeconds=10, timeoutSeconds=5, failureThreshold=3),
    }


def _tolerations(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> list[dict[str, Any]]:
    tolerations = [dict(t) for t in spec.server.tolerations or []]
    if spec.server.gpus:
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    tolerations += [dict(t) for t in ctx.extra_tolerations]
    return tolerations


def workload_kind(ctx: RenderContext) -> str:
    """The server workload's kind under the cache scope in force (HPA target, scale, status)."""
    return "StatefulSet" if ctx.cache_scope == "PerReplica" else "Deployment"


def server_workload(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> dict[str, Any]:
    image = server_image(spec, ctx)
    server = spec.server
    model_dir = names.model_dir(spec.model.source.uri)
    # Only the fetch step writes the cache; the server reads it (a compromised server cannot
    # rewrite the weights that the next pod loads).
    fetch_mounts = [
        {"name": names.CACHE_VOLUME, "mountPath": names.MODEL_MOUNT},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    server_mounts = [
        {"name": names.CACHE_VOLUME, "mountPath": names.MODEL_MOUNT, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    fetch = {
        "name": "fetch-model",
        "image": image,
        "imagePullPolicy": server.image_pull_policy,
        "command": ["emotivoice-fetch"],
        "args": literal_args(fetch_args(spec)),
        **({"env": literal_env(env)} if (env := _fetch_env(spec)) else {}),
        "securityContext": container_security_context(),
        "volumeMounts": fetch_mounts,
        # A failure's message is the log's last lines (the `error:` line) in `kubectl describe`.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    container = {
        "name": "server",
        "image": image,
        "imagePullPolicy": server.image_pull_policy,
        "command": ["emotivoice-server"],
        "args": literal_args(
            [
                *("--model-dir", model_dir),
                *("--port", str(server.port)),
                *("--precision", precision(spec)),
                *("--load-format", spec.model.load_format),
                *("--device", "cuda" if server.gpus else "cpu"),
                # The cache is read-only here, and nothing users send is written anywhere: prompt
                # embeddings stay in memory (warm-up computes the configured ones at start).
                "--no-persist-embeddings",
            ]
        ),
        "ports": [{"name": names.HTTP_PORT_NAME, "containerPort": server.port, "protocol": "TCP"}],
        "env": _server_env(spec),
        "resources": _resources(spec),
        **_probes(spec),
        **_lifecycle(spec),
        "securityContext": container_security_context(),
        "volumeMounts": server_mounts,
    }
    pod_spec: dict[str, Any] = {
        # The server and the fetch step never talk to the Kubernetes API: no token to steal.
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "initContainers": [fetch],
        "containers": [container],
        "volumes": [
            *([volume] if (volume := cache_volume(spec, ctx)) else []),
            {"name": "tmp", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        ],
        "terminationGracePeriodSeconds": termination_grace_seconds(spec),
        "enableServiceLinks": False,
    }
    tolerations = _tolerations(spec, ctx)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if server.node_selector:
        pod_spec["nodeSelector"] = dict(sorted(server.node_selector.items()))
    if server.affinity:
        pod_spec["affinity"] = server.affinity

    selector = {"matchLabels": labels.selector(ctx.owner, names.COMPONENT_SERVER)}
    template = {
        "metadata": {"labels": labels.standard(ctx.owner, names.COMPONENT_SERVER)},
        "spec": pod_spec,
    }
    kind = workload_kind(ctx)
    if kind == "StatefulSet":
        workload_spec: dict[str, Any] = {
            "selector": selector,
            # The governing Service of pod DNS names; the ClusterIP Service is enough (no
            # per-pod names are used).
            "serviceName": names.server(ctx.owner.name),
            # A window's replicas start together, not each after the previous one is Ready.
            "podManagementPolicy": "Parallel",
            # One pod at a time, on its own warm claim (a StatefulSet cannot surge).
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "persistentVolumeClaimRetentionPolicy": retention_policy(spec),
            "volumeClaimTemplates": [replica_claim_template(spec, ctx)],
            "template": template,
        }
    else:
        workload_spec = {
            "selector": selector,
            "strategy": _deployment_strategy(spec, ctx),
            "template": template,
        }
    # With a floor above 0 the HPA owns the replica count; with 0 there is no HPA (it cannot
    # hold 0), so the workload is scaled to zero here.
    if ctx.warm_floor == 0:
        workload_spec["replicas"] = 0
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": labels.metadata(
            ctx.owner, names.server(ctx.owner.name), names.COMPONENT_SERVER
        ),
        "spec": workload_spec,
    }


def _deployment_strategy(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> dict[str, Any]:
    if ctx.cache_scope == "Shared" and spec.model.cache.access_mode == "ReadWriteOncePod":
        # A surge pod could never mount the claim its predecessor holds: the rollout would wait
        # forever. One replica at most here (cache_scope refuses more), replaced in place.
        return {"type": "Recreate"}
    # Never drop warm capacity during a rollout: the new pod must be ready first.
    return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
