"""The pod prober: asking a server pod that just turned Ready for its own start-up phases.

The server times its phases (``emotivoice_server.lifecycle``) and keeps them on ``/ready`` for
as long as the process lives, so one GET right after the pod turns Ready gives the split of the
server's part of the start (import, load, warm-up) that the pod's states cannot. The operator
asks once per start, with a short timeout, at most ``MAX_ASKS`` pods per pass (the rest get one
``server`` phase: a start is never held up by asking).

Only pods a container runtime really runs are asked: a container status without a
``containerID`` (KWOK's simulated pods, whose IPs lead nowhere) is never contacted, so the
operator sends nothing to addresses no pod holds. Without an answer (no route from the
operator to pod IPs, a network policy, a timeout) the split falls back to the pod's states.

It runs inside the pass, before the starts are counted (reconcile/reconciler.py): a start's
record is written once, with the answer or without it, so a prober running apart would either
hold the start's record back for a later pass or write it without the server's phases.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from emotivoice_operator.tuning.coldstarts import PendingStart
from emotivoice_operator.tuning.phases import SERVER_CONTAINER

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 1.0
MAX_ASKS = 10
MAX_BYTES = 64 * 1024


def ready_url(pod: dict[str, Any]) -> str | None:
    """http://POD_IP:PORT/ready of a pod whose server container a runtime runs, else None."""
    status = pod.get("status") or {}
    server = next(
        (c for c in status.get("containerStatuses") or [] if c.get("name") == SERVER_CONTAINER),
        None,
    )
    if not server or not server.get("containerID") or not status.get("podIP"):
        return None
    container = next(
        (
            c
            for c in (pod.get("spec") or {}).get("containers") or []
            if c.get("name") == SERVER_CONTAINER
        ),
        None,
    )
    ports = (container or {}).get("ports") or []
    if not ports or not ports[0].get("containerPort"):
        return None
    try:
        ip = ipaddress.ip_address(status["podIP"])
    except ValueError:
        return None
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"http://{host}:{int(ports[0]['containerPort'])}/ready"


def ask(pod: dict[str, Any], timeout: float = TIMEOUT_SECONDS) -> dict[str, Any] | None:
    """The server's /ready body, or None when it cannot be asked or does not answer in time."""
    url = ready_url(pod)
    if url is None:
        return None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read(MAX_BYTES))
    except (OSError, urllib.error.URLError, ValueError) as exc:
        log.info("could not ask %s for its phases: %s", url, exc)
        return None
    return body if isinstance(body, dict) else None


def answers(pending: Iterable[PendingStart]) -> dict[str, dict[str, Any]]:
    """The /ready bodies of the first ``MAX_ASKS`` pending starts' pods that answered, by pod
    name (``coldstarts.account`` takes them)."""
    bodies: dict[str, dict[str, Any]] = {}
    for start in list(pending)[:MAX_ASKS]:
        answer = ask(start.pod)
        if answer is not None:
            bodies[start.name] = answer
    return bodies
