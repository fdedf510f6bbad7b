"""A fallback pool: where the Service sends traffic, and when requests wake a pool at zero.

Pure: the caller passes what it observed (its own Ready pods, the fallback's spec, the request
counters it read) and the clock; nothing here talks to the API or to pods.

Why a reference to another EmotiVoiceService, not a second workload inside this one: the
fallback is a whole pool with its own needs (CPU variant, its own replicas, resources, cache,
even a schedule of its own), which an EmotiVoiceService already describes, with its own cold
starts and status; one CPU pool can stand behind several GPU pools; and the renderer keeps one
workload per resource. The price is a check across two objects (``check``), done at each pass.

Why a selector switch, not EndpointSlices the operator writes: the endpoints controller keeps
the Service's endpoints true to the pods (Ready, terminating) whether or not the operator runs;
the operator only chooses which pool's labels the Service selects. While the operator is down
the Service keeps its last pool: traffic still reaches Ready pods of that pool, only the next
switch waits for the operator. Owned EndpointSlices would freeze instead, dead pods included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from emotivoice_operator.crd.spec import EmotiVoiceServiceSpec, SpecError
from emotivoice_operator.exposition import counter_sum
from emotivoice_operator.tuning.coldstarts import stamp

# Why the Service selects the pool it does (status.routing.reason, the Routed events).
OWN = "Own"
FALLBACK = "Fallback"
# How often a service whose traffic goes to its fallback, or that is woken, reads the request
# counters of the pool that serves it: the bound on the wake's delay, and on the reads.
POLL_SECONDS = 5.0
# A wake's lastRequestAt moves at most this often: status is written once a minute at most
# under steady traffic, never once per request.
WAKE_WRITE_EVERY = timedelta(minutes=1)
# The server's counter of answered speech requests (emotivoice_server.metrics), by status code.
REQUEST_COUNTER = "emotivoice_speech_requests_total"


@dataclass(frozen=True)
class Route:
    """The pool whose pods the Service NAME selects, and why."""

    pool: str
    reason: str

    def to_status(self, since: datetime) -> dict[str, Any]:
        return {"pool": self.pool, "reason": self.reason, "since": stamp(since)}


def check(name: str, spec: EmotiVoiceServiceSpec, fallback: Mapping[str, Any] | None) -> str:
    """Refuses a fallback that cannot stand in (``SpecError`` naming the field); returns a note
    for status when it can but with a caveat, else "".

    ``fallback``: the fallback EmotiVoiceService as watched (None while it does not exist).
    The API server already refuses this service itself and a name with a namespace (CRD rules);
    they are checked here too for ``render``, which reads files no API server has seen.
    """
    if spec.fallback is None:
        return ""
    target = spec.fallback.service
    if "/" in target:
        raise SpecError(
            "fallback.service",
            f'"{target}" names another namespace: a fallback is an EmotiVoiceService in this '
            "namespace (a Service routes to pods of its own namespace only); give its name alone",
        )
    if target == name:
        raise SpecError(
            "fallback.service",
            "names this service itself: name another EmotiVoiceService in this namespace, one "
            "that serves the same model",
        )
    if fallback is None:
        return f"the fallback {target} does not exist (yet): traffic stays on {name}'s own pods"
    theirs = (fallback.get("spec") or {}).get("fallback") or {}
    if theirs.get("service"):
        cycle = " (a cycle)" if theirs["service"] == name else ""
        raise SpecError(
            "fallback.service",
            f"{target} has a fallback of its own ({theirs['service']}){cycle}: chains are not "
            f"followed; point {name} at a service without a fallback, or remove {target}'s",
        )
    ours = spec.model.source.uri
    their_uri = (((fallback.get("spec") or {}).get("model") or {}).get("source") or {}).get("uri")
    if their_uri != ours:
        return (
            f"the fallback {target} serves another model ({their_uri}, not {ours}): a voice it "
            "lacks gets its answer for an unknown voice (400, param voice)"
        )
    return ""


def route(name: str, spec: EmotiVoiceServiceSpec, own_ready: int, fallback_exists: bool) -> Route:
    """Its own pods while it has a Ready one; the fallback's while it has none."""
    if spec.fallback is None or own_ready > 0 or not fallback_exists:
        return Route(name, OWN)
    return Route(spec.fallback.service, FALLBACK)


@dataclass(frozen=True)
class Traffic:
    """What a pass saw for its service's fallback: the input of ``desired_state``."""

    # The service's own Ready server pods (not terminating).
    own_ready: int = 0
    # The fallback EmotiVoiceService as watched; None: none, or it does not exist.
    fallback: Mapping[str, Any] | None = None
    # The wake status holds (Wake.from_status).
    wake: Wake | None = None
    # The request counters of the pool serving its traffic rose since the last read.
    requests_seen: bool = False


@dataclass(frozen=True)
class Wake:
    """A floor of 1 raised by requests the fallback answered while the floor was 0."""

    since: datetime
    last_request_at: datetime
    expires_at: datetime

    def to_status(self) -> dict[str, str]:
        return {
            "since": stamp(self.since),
            "lastRequestAt": stamp(self.last_request_at),
            "expiresAt": stamp(self.expires_at),
        }

    @classmethod
    def from_status(cls, entry: Any) -> Wake | None:
        """The wake status holds, or None (none, or one that cannot be read)."""
        try:
            since, last, expires = (
                datetime.fromisoformat(str(entry[k]).replace("Z", "+00:00"))
                for k in ("since", "lastRequestAt", "expiresAt")
            )
        except (KeyError, TypeError, ValueError):
            return None
        if None in (since.tzinfo, last.tzinfo, expires.tzinfo):
            return None
        return cls(since, last, expires)

    def active(self, now: datetime) -> bool:
        return now < self.expires_at


def next_wake(
    previous: Wake | None,
    requests_seen: bool,
    floor_without_wake: int,
    now: datetime,
    hold: timedelta,
) -> Wake | None:
    """The wake after this pass.

    ``requests_seen``: the counters of the pool serving this service's traffic rose since the
    last read (the fallback's while routed there, its own while woken). A new wake needs a
    floor of 0 without it (a floor of 1 or more already keeps a pod); an active wake is
    extended at most once per ``WAKE_WRITE_EVERY``; an expired one is dropped.
    """
    live = previous if previous is not None and previous.active(now) else None
    if not requests_seen:
        return live
    if live is None:
        if floor_without_wake > 0:
            return None
        return Wake(now, now, now + hold)
    if now - live.last_request_at < WAKE_WRITE_EVERY:
        return live
    return Wake(live.since, now, now + hold)


def requests_answered(metrics_text: str) -> float:
    """The sum over status codes of the server's answered speech requests, from its /metrics."""
    return counter_sum(metrics_text, REQUEST_COUNTER)


def counters_rose(previous: Mapping[str, float], current: Mapping[str, float]) -> bool:
    """Whether any pod answered a request between two reads (keyed by pod uid). A pod read for
    the first time is a baseline, not a request: its count may be hours old; a pod whose count
    fell restarted, and anything it counted since is new."""
    for pod, count in current.items():
        before = previous.get(pod)
        if before is not None and (count > before or 0 < count < before):
            return True
    return False
