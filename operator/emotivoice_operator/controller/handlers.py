"""The kopf glue: watches that feed indexes and trigger passes; the passes run from a queue.

Every watched object (selectors.py) lands in a kopf index keyed by its service
(``(namespace, name)``): the resource itself, each kind of child (by the instance label) and the
server pods. kopf fills the indexes from its initial listings before any handler runs, so the
first pass already sees everything that exists. A watch event only marks its service due in the
work queue (queue.py: coalescing, fair across namespaces, ``reconcile_workers`` at once); the
pass reads the indexes (``_snapshot``) and runs ``Reconciler.reconcile`` in a thread.

Triggers: any event of the resource (created, spec or status changed: a warm request, the
operator's own write; the first listing after a restart), any event of a child or server pod
(an edited or deleted child is restored within seconds), and one timer loop (timer.py), which
only brings back a service whose next time edge is due (reconcile/edges.py): an idle service
costs no API request.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import kopf
import prometheus_client
from kubernetes import client, config

from emotivoice_operator import metrics
from emotivoice_operator.controller.cache import Snapshot, first, pack, unpacked
from emotivoice_operator.controller.expectations import Expectations
from emotivoice_operator.controller.queue import FairQueue, Key
from emotivoice_operator.controller.seen import SeenClock
from emotivoice_operator.controller.selectors import (
    CALENDAR_USERS_INDEX,
    CALENDARS_INDEX,
    CHILD_INDEXES,
    CHILD_KINDS,
    FALLBACKS_INDEX,
    PODS_INDEX,
    SERVER_PODS,
    SERVICES_INDEX,
    WARM_PODS,
    WARM_PODS_INDEX,
)
from emotivoice_operator.controller.timer import Timer
from emotivoice_operator.crd import CALENDAR_PLURAL, GROUP, PLURAL, VERSION
from emotivoice_operator.reconcile.children import requests_in_flight
from emotivoice_operator.reconcile.reconciler import Reconciler
from emotivoice_operator.render import names
from emotivoice_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

SETTINGS = OperatorSettings.from_env()
API_READ_TIMEOUT_S = 60


class NoDiffBase(kopf.DiffBaseStorage):
    """No "last handled" copy of any object.

    kopf diffs each event's object against a stored copy for its on.create/on.update handlers;
    there are none here (every trigger is an on.event or an index), yet it deep-copied every
    watched body on every event to build that diff: 5% of the operator's time while a thousand
    services converge, and a diff nothing read.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def _default_timeout(api: client.ApiClient, timeout: tuple[float, float]) -> None:
    """Every request of ``api`` without a timeout of its own gets ``(connect, read)`` seconds.
    (The client passes ``None`` down to urllib3, which overrides a pool-wide default.)"""
    request = api.rest_client.request

    def with_timeout(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return request(*args, _request_timeout=_request_timeout or timeout, **kwargs)

    api.rest_client.request = with_timeout


PEERING_LIFETIME_S = 15


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    # Handler progress lives in annotations of our own group, status stays ours alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.level = logging.INFO
    # kopf logs "Handler ... succeeded." for every watch event of every object (thousands a
    # minute at a thousand services); failures are warnings and errors, and stay.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.watching.server_timeout = 300
    # With peering (replicas): a replica killed without its goodbye (SIGKILL, a lost node)
    # holds the others paused until its record expires; kopf's 60 s would take most of a
    # window's lead. Keepalives come every 5 to 10 s at this lifetime.
    settings.peering.lifetime = PEERING_LIFETIME_S
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    # A connection for each request that may be in flight (the client's default pool holds
    # five per core: the rest would be opened, TLS handshake and all, and thrown away).
    # Plus a few for the rest: warm-floor scale patches, status patches, claim deletes.
    configuration.connection_pool_maxsize = requests_in_flight(SETTINGS) + 4
    api = client.ApiClient(configuration)
    # No request may hang a pass for good: the queue runs one pass per service at a time, so a
    # pass stuck on a dead connection would stop that service's reconciles (the client's
    # default is no timeout at all).
    _default_timeout(api, (10, API_READ_TIMEOUT_S))
    memo.expectations = Expectations()
    memo.reconciler = Reconciler(api, SETTINGS, expectations=memo.expectations)
    # The indexes, as kopf passes them to every handler (by handler id).
    memo.indexes = {
        name: kwargs[name]
        for name in (
            SERVICES_INDEX, PODS_INDEX, WARM_PODS_INDEX, FALLBACKS_INDEX, CALENDARS_INDEX, CALENDAR_USERS_INDEX,
            *CHILD_INDEXES,
        )
    }  # fmt: skip
    memo.timer = Timer()
    # Tasks of the operator's own, started by the first handler (``_trigger``).
    memo.tasks = {}
    memo.queue = FairQueue(partial(_pass, memo), workers=SETTINGS.reconcile_workers)
    # A thread per worker: asyncio's default executor has min(32, cores + 4), six threads on
    # two cores, which silently capped the workers a pass mostly spends waiting on the API.
    memo.threads = ThreadPoolExecutor(SETTINGS.reconcile_workers, thread_name_prefix="reconcile")
    if SETTINGS.metrics_port:
        prometheus_client.start_http_server(SETTINGS.metrics_port)


@kopf.on.cleanup()
async def stop_queue(memo: kopf.Memo, **_: Any) -> None:
    for task in memo.get("tasks", {}).values():
        task.cancel()
    if "queue" in memo:
        await memo.queue.stop()
    if "threads" in memo:
        memo.threads.shutdown(wait=False, cancel_futures=True)


def _snapshot(indexes: dict[str, Any], key: Key) -> Snapshot:
    """The service as the indexes hold it now (read on the event loop, which alone writes
    them; the pass then runs in a thread over these lists)."""
    children = [c for name in CHILD_INDEXES for c in unpacked(indexes[name].get(key))]
    body = first(indexes[SERVICES_INDEX].get(key))
    target = (((body or {}).get("spec") or {}).get("fallback") or {}).get("service")
    fallback_key = (key[0], target) if isinstance(target, str) and target != key[1] else None
    calendars = {}
    for name in _calendar_names((body or {}).get("spec") or {}):
        found = first(indexes[CALENDARS_INDEX].get(name))
        if found is not None:
            calendars[name] = found
    return Snapshot(
        body=body,
        children=children,
        pods=unpacked(indexes[PODS_INDEX].get(key)),
        fallback=first(indexes[SERVICES_INDEX].get(fallback_key)) if fallback_key else None,
        fallback_pods=unpacked(indexes[PODS_INDEX].get(fallback_key)) if fallback_key else [],
        calendars=calendars,
        warm_pods=unpacked(indexes[WARM_PODS_INDEX].get(key)),
    )


def _calendar_names(spec: Any) -> list[str]:
    """spec.warmPool.calendars, as far as it is a list of names (the pass judges the rest)."""
    names = ((spec.get("warmPool") or {}).get("calendars")) or []
    return [n for n in names if isinstance(n, str) and n] if isinstance(names, list) else []


def _poster(body: dict[str, Any]):
    def post(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message[:1000])

    return post


async def _pass(memo: kopf.Memo, key: Key) -> None:
    snap = _snapshot(memo.indexes, key)
    if snap.body is None:
        memo.timer.forget(key)
        metrics.forget_service(*key)
        return
    # The pass runs in the context of this task: kopf.event needs its posting queue from it.
    context = contextvars.copy_context()
    with metrics.RECONCILE_SECONDS.time():
        outcome = await asyncio.get_running_loop().run_in_executor(
            memo.threads, context.run, memo.reconciler.reconcile, snap, _poster(snap.body)
        )
    if outcome is None:
        memo.timer.forget(key)
        metrics.forget_service(*key)
    else:
        memo.timer.requeue_at(key, outcome.next_edge)


def _trigger(memo: kopf.Memo, key: Key) -> None:
    if "queue" not in memo:
        return
    # Started from the first handler, not at startup: the workers' tasks inherit the context
    # of a handler, where kopf keeps the queue that Events are posted through.
    memo.queue.ensure_started()
    if "ticker" not in memo.tasks:  # memo.tasks is the operator's (each handler's memo: a copy)
        memo.tasks["ticker"] = asyncio.get_running_loop().create_task(
            memo.timer.run(
                SETTINGS.timer_interval, lambda: memo.indexes[SERVICES_INDEX], memo.queue.trigger
            )
        )
    memo.queue.trigger(key)


@kopf.index(GROUP, VERSION, PLURAL, id=SERVICES_INDEX)
async def _index_service(namespace: str, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace, name): pack(body)}


@kopf.index(GROUP, VERSION, PLURAL, id=FALLBACKS_INDEX)
async def _index_fallback(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> Any:
    target = (spec.get("fallback") or {}).get("service")
    return {(namespace, target): name} if isinstance(target, str) and target else None


@kopf.index(GROUP, VERSION, PLURAL, id=CALENDAR_USERS_INDEX)
async def _index_calendar_user(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> Any:
    return {calendar: (namespace, name) for calendar in _calendar_names(spec)} or None


# Cluster-scoped: kopf serves it cluster-wide also when the operator watches some namespaces
# only (tests/integration/test_calendars.py checks it on a real API server).
@kopf.index(GROUP, VERSION, CALENDAR_PLURAL, id=CALENDARS_INDEX)
async def _index_calendar(name: str, body: kopf.Body, **_: Any) -> Any:
    return {name: pack(body)}


@kopf.on.event(GROUP, VERSION, CALENDAR_PLURAL)
async def on_calendar_event(name: str, memo: kopf.Memo, **_: Any) -> None:
    """The services naming this calendar see it appear, change or go."""
    if "queue" in memo:
        for service in memo.indexes[CALENDAR_USERS_INDEX].get(name, ()):
            _trigger(memo, service)


# When the watch showed each server pod first and turned Ready (seen.py): the cold start's ends.
SEEN = SeenClock()


@kopf.index("", "v1", "pods", labels=SERVER_PODS, id=PODS_INDEX)
async def _index_pod(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> Any:
    return {(namespace, labels[names.LABEL_INSTANCE]): pack(SEEN.stamp(body))}


@kopf.index("", "v1", "pods", labels=WARM_PODS, id=WARM_PODS_INDEX)
async def _index_warm_pod(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> Any:
    return {(namespace, labels[names.LABEL_INSTANCE]): pack(body)}


async def _index_child(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> Any:
    return {(namespace, labels[names.LABEL_INSTANCE]): pack(body)}


@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_service_event(
    event: dict[str, Any], namespace: str, name: str, memo: kopf.Memo, **_: Any
) -> None:
    key = (namespace, name)
    # The services standing on this one as their fallback see it appear, change or go.
    if "queue" in memo:
        for primary in memo.indexes[FALLBACKS_INDEX].get(key, ()):
            _trigger(memo, (namespace, primary))
    if event.get("type") == "DELETED":
        if "queue" in memo:
            memo.queue.forget(key)
            memo.timer.forget(key)
            memo.expectations.forget(namespace, name)
        metrics.forget_service(namespace, name)
        return
    _trigger(memo, key)


async def _on_child_event(
    event: dict[str, Any],
    body: kopf.Body,
    name: str,
    namespace: str,
    labels: kopf.Labels,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    owner = labels[names.LABEL_INSTANCE]
    if event.get("type") == "DELETED" and "expectations" in memo:
        memo.expectations.deletion_observed(namespace, owner, body.get("kind", ""), name)
    _trigger(memo, (namespace, owner))


for _group, _version, _plural, _labels in CHILD_KINDS:
    kopf.index(_group, _version, _plural, labels=_labels, id=f"evs_{_plural}")(_index_child)
    kopf.on.event(_group, _version, _plural, labels=_labels)(_on_child_event)
kopf.on.event("", "v1", "pods", labels=SERVER_PODS)(_on_child_event)
kopf.on.event("", "v1", "pods", labels=WARM_PODS)(_on_child_event)
