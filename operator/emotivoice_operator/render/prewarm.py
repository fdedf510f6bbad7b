"""Pre-warm CronJobs, one per warm window, and the least-privilege identity they run under.

Each job fires ``leadTime`` before its window starts (the cron expression is in the window's own
zone and the CronJob's native ``timeZone`` makes the cluster do the wall-clock work, DST
included). It records a warm request on the EmotiVoiceService's status and primes the servers;
the operator alone turns requests into a replica floor, so nothing fights over a field.
"""

from __future__ import annotations

from typing import Any

from emotivoice_operator.crd import GROUP, PLURAL
from emotivoice_operator.crd.spec import EmotiVoiceServiceSpec
from emotivoice_operator.render import labels, names
from emotivoice_operator.render.context import RenderContext
from emotivoice_operator.render.deployment import prewarm_image, warmup_env
from emotivoice_operator.render.expansion import literal_args, literal_env
from emotivoice_operator.render.security import container_security_context, pod_security_context
from emotivoice_operator.windows import Window, prewarm_cron, window_hold

# A job that has not run within this long after its schedule is skipped: past the window's own
# hold the request would be pointless (the operator's own window floor covers a missed job).
MIN_STARTING_DEADLINE_SECONDS = 60


def prewarm_rbac(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding of the pre-warm jobs; none without windows.

    The Role names this one EmotiVoiceService: a pre-warm job can read it and patch its status
    (where warm requests live), nothing else, not even its spec.
    """
    if not spec.warm_pool:
        return []
    owner = ctx.owner
    name = names.prewarm_account(owner.name)
    meta = labels.metadata(owner, name, names.COMPONENT_PREWARM)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "resources": [PLURAL],
                    "resourceNames": [owner.name],
                    "verbs": ["get"],
                },
                {
                    "apiGroups": [GROUP],
                    "resources": [f"{PLURAL}/status"],
                    "resourceNames": [owner.name],
                    "verbs": ["get", "patch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}],
        },
    ]


def prewarm_cronjobs(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> list[dict[str, Any]]:
    """One CronJob per window of ``ctx.windows`` (parsed by the caller, in spec order)."""
    return [_cronjob(spec, ctx, w) for w in ctx.windows]


def _cronjob(spec: EmotiVoiceServiceSpec, ctx: RenderContext, window: Window) -> dict[str, Any]:
    owner = ctx.owner
    hold_seconds = int(window_hold(window).total_seconds())
    url = f"http://{names.server(owner.name)}.{owner.namespace}.svc:{spec.server.port}"
    container = {
        "name": "prewarm",
        "image": prewarm_image(spec, ctx),
        "imagePullPolicy": spec.server.image_pull_policy,
        "command": ["emotivoice-prewarm"],
        "args": literal_args(["--name", owner.name, "--window", window.name, "--url", url]),
        "env": literal_env(
            [
                {
                    "name": "EMOTIVOICE_NAMESPACE",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                },
                warmup_env(spec),
            ]
        ),
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": container_security_context(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": labels.metadata(
            owner, names.prewarm_cronjob(owner.name, window.name), names.COMPONENT_PREWARM
        ),
        "spec": {
            "schedule": prewarm_cron(window),
            "timeZone": window.zone.key,
            # One pre-warm at a time; a late start still helps until the window is over.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": max(MIN_STARTING_DEADLINE_SECONDS, hold_seconds),
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 2,
            "jobTemplate": {
                "metadata": {"labels": labels.standard(owner, names.COMPONENT_PREWARM)},
                "spec": {
                    "backoffLimit": 3,
                    "activeDeadlineSeconds": max(
                        MIN_STARTING_DEADLINE_SECONDS,
                        min(hold_seconds, spec.server.startup_timeout_seconds + 600),
                    ),
                    "ttlSecondsAfterFinished": 86400,
                    "template": {
                        "metadata": {"labels": labels.standard(owner, names.COMPONENT_PREWARM)},
                        "spec": {
                            "serviceAccountName": names.prewarm_account(owner.name),
                            "restartPolicy": "OnFailure",
                            "securityContext": pod_security_context(),
                            "containers": [container],
                            **_tolerations(ctx),
                        },
                    },
                },
            },
        },
    }


def _tolerations(ctx: RenderContext) -> dict[str, Any]:
    return (
        {"tolerations": [dict(t) for t in ctx.extra_tolerations]} if ctx.extra_tolerations else {}
    )
