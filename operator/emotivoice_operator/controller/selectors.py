"""What the operator watches: every kind of child, by label, and the server pods.

The indexes key each object by its service (the instance label), so a selector here is also how
a test lists "what the watches show" of one service without starting kopf.
"""

from __future__ import annotations

import kopf

from emotivoice_operator.render import names

# Children: every kind render/ makes, as the prune and the apply look them up. PVCs are watched by
# the instance label alone: the StatefulSet controller makes the per-replica claims.
MANAGED = {names.LABEL_INSTANCE: kopf.PRESENT, names.LABEL_MANAGED_BY: names.MANAGER}
CHILD_KINDS = (
    ("apps", "v1", "deployments", MANAGED),
    ("apps", "v1", "statefulsets", MANAGED),
    ("", "v1", "services", MANAGED),
    ("", "v1", "persistentvolumeclaims", {names.LABEL_INSTANCE: kopf.PRESENT}),
    ("autoscaling", "v2", "horizontalpodautoscalers", MANAGED),
    ("batch", "v1", "cronjobs", MANAGED),
    ("", "v1", "serviceaccounts", MANAGED),
    ("rbac.authorization.k8s.io", "v1", "roles", MANAGED),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", MANAGED),
    ("apps", "v1", "daemonsets", MANAGED),
)
# The server pods: labels.selector(owner, COMPONENT_SERVER), the instance any.
SERVER_PODS = {
    names.LABEL_NAME: names.APP_NAME,
    names.LABEL_INSTANCE: kopf.PRESENT,
    names.LABEL_COMPONENT: names.COMPONENT_SERVER,
}
# The warm path's pods (warmpath/): the image pre-pull DaemonSet's and the capacity placeholders.
WARM_PATH_COMPONENTS = frozenset({names.COMPONENT_PREPULL, names.COMPONENT_PLACEHOLDER})


def _warm_path_component(value: str | None, **_: object) -> bool:
    return value in WARM_PATH_COMPONENTS


WARM_PODS = {
    names.LABEL_NAME: names.APP_NAME,
    names.LABEL_INSTANCE: kopf.PRESENT,
    names.LABEL_COMPONENT: _warm_path_component,
}
# The kopf index ids (kopf passes each index to every handler under its id).
SERVICES_INDEX = "evs_services"
PODS_INDEX = "evs_pods"
WARM_PODS_INDEX = "evs_warm_pods"
# (namespace, fallback) -> the services that name it in spec.fallback: a fallback that appears,
# changes or goes brings their passes, not only its own.
FALLBACKS_INDEX = "evs_fallbacks"
# EmotiVoiceCalendars (cluster-scoped) by name, and calendar name -> the services (namespace,
# name) naming it in spec.warmPool.calendars: a calendar that appears, changes or goes brings
# their passes, not only at the timer's horizon.
CALENDARS_INDEX = "evs_calendars"
CALENDAR_USERS_INDEX = "evs_calendar_users"
CHILD_INDEXES = tuple(f"evs_{plural}" for _, _, plural, _ in CHILD_KINDS)
