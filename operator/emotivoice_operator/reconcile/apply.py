"""One apply path for every child: server-side apply, skipped when the live object already
holds the rendered values, plus pruning of children the spec no longer asks for.

Only objects that are ours are ever written or deleted (``ownership.is_ours``): the reconciler
looks at every child first (as the watches show it, controller/cache.py) and refuses to apply
anything while a name is taken by someone else's object; pruning deletes only objects whose owner
reference names the resource's uid.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from emotivoice_operator.reconcile.drift import differences, value_at
from emotivoice_operator.reconcile.ownership import controlled_by
from emotivoice_operator.render import names

log = logging.getLogger(__name__)

# Kinds a spec change can make unnecessary (a window removed, scale to zero removes the HPA,
# a cache scope change swaps the Deployment for a StatefulSet or back). Never the PVC or the
# Service: those exist as long as the resource does (per-replica claims have their own rule,
# reconcile/claims.py).
PRUNABLE = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "CronJob"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("v1", "ServiceAccount"),
)


# Kinds the API server checks against another child when they are written: a RoleBinding may
# grant only what the operator itself holds, and the escalation check reads the Role it names,
# so the Role must exist first. Everything else may be applied at once (an HPA may name a
# StatefulSet not there yet; a CronJob a ServiceAccount).
AFTER_THE_REST = frozenset({"RoleBinding"})


def apply_waves(manifests: list[dict[str, Any]]) -> list[list[int]]:
    """The rendered children's indexes in the waves they can be applied in, each wave at once."""
    first = [i for i, m in enumerate(manifests) if m["kind"] not in AFTER_THE_REST]
    then = [i for i, m in enumerate(manifests) if m["kind"] in AFTER_THE_REST]
    return [wave for wave in (first, then) if wave]


@dataclass
class ApplyResult:
    kind: str
    name: str
    action: str  # "created", "updated", "unchanged", "deleted"
    drift: list[str]
    # Paths that still differ after our apply: another writer holds them (a port someone added
    # to our Service). Reported once; later passes that find exactly this drift do not re-apply.
    held: list[str] = field(default_factory=list)
    # The object as the API returned it after our write (None: nothing written).
    obj: dict[str, Any] | None = None


def _held_values(live: dict[str, Any], paths: list[str]) -> str:
    return json.dumps([value_at(live, p) for p in paths], sort_keys=True, default=str)


def _key(manifest: dict[str, Any]) -> tuple[str, str, str]:
    meta = manifest["metadata"]
    return (manifest["kind"], meta["namespace"], meta["name"])


class Applier:
    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._dyn = DynamicClient(api)
        self._resources: dict[tuple[str, str], Any] = {}
        # (kind, namespace, name) -> (the manifest we applied, the drift left right after it,
        # the live values at those paths then): what another writer holds, as it held it.
        self._settled: dict[tuple[str, str, str], tuple[str, tuple[str, ...], str]] = {}

    def resource(self, api_version: str, kind: str) -> Any:
        # The discovery cache's lookup walks every resource the server has: once per kind.
        key = (api_version, kind)
        if key not in self._resources:
            self._resources[key] = self._dyn.resources.get(api_version=api_version, kind=kind)
        return self._resources[key]

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One request, its JSON answer as plain dicts. Not through the dynamic client's
        request: that one formats a traceback into every error it raises (a 404 included, the
        answer for every child of a new service) and wraps every answer in attribute objects
        that ``to_dict`` copies back, together a tenth of the operator's time at a thousand
        services. Errors stay ``ApiException`` (status, reason, body)."""
        response = self._api.call_api(
            path, method, query_params=query or [], body=body, auth_settings=["BearerToken"],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            _preload_content=False, _return_http_data_only=True,
        )  # fmt: skip
        return json.loads(response.data)

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        path = self.resource(api_version, kind).path(name=name, namespace=namespace)
        try:
            return self._call("GET", path)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def live(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        meta = manifest["metadata"]
        return self.get(manifest["apiVersion"], manifest["kind"], meta["name"], meta["namespace"])

    def apply(self, manifest: dict[str, Any], live: dict[str, Any] | None) -> ApplyResult:
        """Applies ``manifest`` over ``live`` (as read just before; the caller checked it is ours)."""
        meta = manifest["metadata"]
        key = _key(manifest)
        rendered = json.dumps(manifest, sort_keys=True)
        wanted = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
        drift = differences(wanted, live) if live else []
        if live and not drift:
            self._settled.pop(key, None)
            return ApplyResult(manifest["kind"], meta["name"], "unchanged", [])
        if live and self._settled.get(key) == (rendered, tuple(drift), _held_values(live, drift)):
            # Exactly what our last apply could not change, unchanged since: applying again
            # changes nothing (an edit inside those fields is a new value, and is applied).
            return ApplyResult(manifest["kind"], meta["name"], "unchanged", [], held=drift)
        path = self.resource(manifest["apiVersion"], manifest["kind"]).path(
            name=meta["name"], namespace=meta["namespace"]
        )
        after = self._call(
            "PATCH", path, body=manifest, content_type="application/apply-patch+yaml",
            query=[("fieldManager", names.FIELD_MANAGER), ("force", "true")],
        )  # fmt: skip
        held = differences(wanted, after)
        if held:
            self._settled[key] = (rendered, tuple(held), _held_values(after, held))
        else:
            self._settled.pop(key, None)
        action = "updated" if live else "created"
        log.info("%s %s/%s %s %s", action, manifest["kind"], meta["namespace"], meta["name"], drift)
        return ApplyResult(manifest["kind"], meta["name"], action, drift, held, after)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        self._settled.pop((kind, namespace, name), None)

    def prune(
        self,
        namespace: str,
        uid: str,
        keep: list[dict[str, Any]],
        children: list[dict[str, Any]],
    ) -> list[ApplyResult]:
        """Deletes the ``children`` (live objects of the prunable kinds, as the watches show
        them) that the rendered set ``keep`` no longer holds and that are ours.

        Their labels only narrowed the watch; what decides is the owner reference to ``uid``
        (labels are text anybody may copy onto their own CronJob). A child an earlier pass
        deleted, whose watch event has not come yet, is gone already: nothing to say.
        """
        wanted = {(m["kind"], m["metadata"]["name"]) for m in keep}
        results = []
        for obj in children:
            kind, name = obj["kind"], obj["metadata"]["name"]
            if (kind, name) in wanted or not controlled_by(obj, uid):
                continue
            try:
                self.resource(obj["apiVersion"], kind).delete(
                    name=name,
                    namespace=namespace,
                    # The uid we checked is the one deleted, even if the name was re-used since.
                    body={
                        "apiVersion": "v1",
                        "kind": "DeleteOptions",
                        "preconditions": {"uid": obj["metadata"]["uid"]},
                    },
                )
            except (NotFoundError, ConflictError):
                continue  # gone already, or a new object of that name
            self.forget(kind, namespace, name)
            log.info("deleted %s %s/%s", kind, namespace, name)
            results.append(ApplyResult(kind, name, "deleted", []))
        return results
