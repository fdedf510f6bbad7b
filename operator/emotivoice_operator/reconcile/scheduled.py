"""A pass's read of when its new server pods were scheduled, to the microsecond.

The pod's PodScheduled condition has whole seconds; the kube-scheduler's ``Scheduled`` Event,
posted through events.k8s.io, carries an ``eventTime`` in microseconds (its ``firstTimestamp``
and ``lastTimestamp`` are null). ``tuning/phases.py`` takes it as the boundary between the
``scheduling`` and ``image`` phases. One list of the namespace's Scheduled Events, and only in a
pass with a start of a new pod to account (a restart in place has no scheduling), so an idle
service costs no request; a refused or failed list leaves the condition's stamps in force.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from emotivoice_operator.tuning.coldstarts import PendingStart

log = logging.getLogger(__name__)

SELECTOR = "reason=Scheduled,involvedObject.kind=Pod"


def scheduled_times(events: Iterable[Any]) -> dict[str, datetime]:
    """``eventTime`` (UTC) of each Scheduled Event (``V1Event``s as the client returns them),
    by the pod's uid, or by its name for an Event that names no uid (``coldstarts.account``
    looks a pod up both ways). Events without an
    ``eventTime`` (a core/v1 recorder's: whole-second timestamps only) are skipped; of several
    for one pod, the latest counts."""
    found: dict[str, datetime] = {}
    for event in events:
        when = event.event_time
        obj = event.involved_object
        if not isinstance(when, datetime) or obj is None or not (obj.uid or obj.name):
            continue
        # The client parses the API's "Z" into an aware datetime (tzutc, or tzlocal where the
        # local zone is UTC); a naive one can only be UTC.
        when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
        key = obj.uid or obj.name
        if key not in found or when > found[key]:
            found[key] = when
    return found


class ScheduledReader:
    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)

    def read(self, namespace: str, pending: Iterable[PendingStart]) -> dict[str, datetime]:
        """The Scheduled instants of the namespace's pods (``scheduled_times``), listed only
        when ``pending`` holds a new pod's start; empty otherwise or when the list fails."""
        if all(p.since_restart for p in pending):
            return {}
        try:
            listed = self.core.list_namespaced_event(namespace, field_selector=SELECTOR)
        except ApiException as exc:
            log.info("could not list the Scheduled Events of %s: %s", namespace, exc)
            return {}
        return scheduled_times(listed.items or [])
