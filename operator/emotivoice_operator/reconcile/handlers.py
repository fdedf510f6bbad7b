"""kopf handlers: thin triggers around ``Reconciler.reconcile``.

Triggers: the resource's own create/update/resume, a timer (warm-window edges, request
expiry, drift the watches missed), and any change to a child we manage (an edited or deleted
child is restored within seconds, not at the next timer pass).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
import prometheus_client
from kubernetes import client, config

from emotivoice_operator.crd import GROUP, PLURAL, VERSION
from emotivoice_operator.reconcile.reconciler import Reconciler
from emotivoice_operator.render import names
from emotivoice_operator.settings import OperatorSettings

SETTINGS = OperatorSettings.from_env()
MANAGED = {names.LABEL_MANAGED_BY: names.MANAGER}
CHILD_KINDS = (
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("", "v1", "services"),
    ("", "v1", "persistentvolumeclaims"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("batch", "v1", "cronjobs"),
    ("", "v1", "pods"),
)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Handler progress lives in annotations of our own group, status stays ours alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    memo.reconciler = Reconciler(client.ApiClient(), SETTINGS)
    if SETTINGS.metrics_port:
        prometheus_client.start_http_server(SETTINGS.metrics_port)


def _poster(body: dict[str, Any]):
    def post(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message[:1000])

    return post


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile_service(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.reconciler.reconcile(dict(body), _poster(dict(body)))


@kopf.timer(GROUP, VERSION, PLURAL, interval=SETTINGS.timer_interval, sharp=True)
def refresh(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.reconciler.reconcile(dict(body), _poster(dict(body)))


def _on_child_change(
    event: dict[str, Any], namespace: str, labels: dict[str, str], memo: kopf.Memo, **_: Any
) -> None:
    owner_name = labels.get(names.LABEL_INSTANCE)
    if not owner_name or "reconciler" not in memo:
        return
    owner = memo.reconciler.get(namespace, owner_name)
    if owner is None or owner["metadata"].get("deletionTimestamp"):
        return
    memo.reconciler.reconcile(owner, _poster(owner))


for _group, _version, _plural in CHILD_KINDS:
    kopf.on.event(_group, _version, _plural, labels=MANAGED)(_on_child_change)
