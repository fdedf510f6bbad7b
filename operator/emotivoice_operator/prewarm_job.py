"""``emotivoice-prewarm``: what a window's pre-warm CronJob runs, leadTime before the window
opens.

1. Records a warm request on the EmotiVoiceService's status (``status.warmRequests[WINDOW]``:
   replicas and expiry). The operator turns requests into the replica floor; this job never
   touches the HPA or the Deployment, so the two never write the same field.
2. Waits until the service reports that many ready replicas (bounded by ``--timeout``).
3. Primes the servers through the Service with the warm-up requests, so caches are hot before
   real traffic arrives (``emotivoice_server.prime``, imported: it needs only the standard
   library, and the operator's image carries the server package without torch or flask).

A CronJob fires on whole minutes, a learned lead has seconds: the CronJob fires in the minute
before ``start - lead`` and the job waits out the rest (``lead_wait``) before its request, so the
replicas come when the lead says, not up to a minute early. Run by hand (``kubectl create job
--from=cronjob/NAME-warm-WINDOW``) away from that minute, it pre-warms at once for the window's
length.

A CronJob cannot skip a date, so the job checks the pool's dates itself: when the occurrence it
pre-warms is skipped (a holiday, or a datesOnly window on a date that does not name it) it logs
one line and exits 0 without a request. Its Role cannot read the cluster-scoped calendars, so it
reads them as the operator resolved them into ``status.calendar.upcoming``, under the spec's own
``warmPool.dates``. (Suspending the CronJob for such a date instead would race: un-suspending a
CronJob may start the schedule it missed, if still within startingDeadlineSeconds.)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from emotivoice_operator import windows as win
from emotivoice_operator.crd import GROUP, PLURAL, VERSION
from emotivoice_operator.crd.spec import SpecError, parse_spec
from emotivoice_operator.reconcile.memory import lead_in_force
from emotivoice_operator.windows.calendar import calendar_from_status
from emotivoice_operator.windows.schedule import (
    DST_SLACK,
    next_start,
    occurrence_end,
    skipped_occurrence,
)
from emotivoice_server import prime as priming

log = logging.getLogger("emotivoice-prewarm")


class SkippedOccurrence(Exception):
    """The occurrence this run pre-warms is skipped by the pool's dates: nothing to request."""


class UnknownWindowError(ValueError):
    """The job names a window the resource does not have (renamed or removed since the job was
    made, or a typo in a job run by hand)."""


# The most a run waits for its lead to begin: the CronJob fires less than a minute before it
# (the lead's minutes rounded up), plus a little for a DST change between the wall clock and UTC.
MAX_LEAD_WAIT_S = 70.0


def _window(body: dict[str, Any], window_name: str) -> win.Window:
    """The named window as the operator renders it (the learned lead in force, the calendar as
    status resolved it), or ``UnknownWindowError``/``SpecError``."""
    spec = parse_spec(body.get("spec") or {})
    learned = lead_in_force(body.get("status"))
    windows: list[win.Window] = []
    if spec.warm_pool:
        calendar = calendar_from_status(spec.warm_pool, body.get("status"))
        windows = win.parse_windows(spec.warm_pool, learned, calendar)
    window = next((w for w in windows if w.name == window_name), None)
    if window is None:
        known = ", ".join(w.name for w in windows) or "none"
        raise UnknownWindowError(
            f"window {window_name!r} is not in spec.warmPool.windows (known: {known})"
        )
    return window


def warm_request(body: dict[str, Any], window_name: str, now: datetime) -> win.WarmRequest:
    """The request for ``window_name`` made at ``now``: its replicas, until the window ends.

    A function of its arguments (no clock, no API, no exit): ``main`` turns its errors into the
    job's exit. Inside the window (or its lead time) the request ends with the window; a run
    outside it (by hand, or a late start) holds for lead time + duration from now. Raises
    ``SkippedOccurrence`` when the pool's dates skip the occurrence warm at ``now`` (its message:
    the one line the job logs), ``UnknownWindowError`` (or ``SpecError`` for a spec that cannot be
    honoured).
    """
    window = _window(body, window_name)
    skipped = skipped_occurrence(window, now, early=DST_SLACK)
    if skipped is not None:
        start, entry = skipped
        day = start.astimezone(window.calendar.zone).date()
        why = entry.label if entry else "the window is datesOnly and no date entry names it"
        raise SkippedOccurrence(f"window {window.name} skipped on {day.isoformat()}: {why}")
    expires = occurrence_end(window, now) or now + win.window_hold(window)
    return win.WarmRequest(window.replicas, expires)


def lead_wait(body: dict[str, Any], window_name: str, now: datetime) -> float:
    """Seconds from ``now`` until the window's next lead begins (``start - lead``), when that is
    within ``MAX_LEAD_WAIT_S`` (the CronJob fired in the minute before it); else 0: a run by hand
    or inside the lead requests at once."""
    window = _window(body, window_name)
    start = next_start(window, now)
    if start is None:
        return 0.0
    wait = (start - window.lead - now).total_seconds()
    return wait if 0 < wait <= MAX_LEAD_WAIT_S else 0.0


def wait_ready(read_status: Callable[[], dict[str, Any]], replicas: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        ready = int(read_status().get("readyReplicas") or 0)
        if ready >= replicas or time.monotonic() >= deadline:
            return ready
        time.sleep(5)


def prime_replicas(
    url: str,
    replicas: int,
    env: Mapping[str, str],
    prime: Callable[..., tuple[int, str | None]] = priming.prime_from_env,
) -> int:
    """Prime through the Service once per ready replica (at least once), with the warm-up plan
    the operator rendered into ``env``; the first failure's exit code ends it (a malformed plan:
    ``priming.EXIT_BAD_PLAN``, its message on stderr).

    kube-proxy picks a pod at random per connection (one per request here), so every pod is
    likely, not certain, to see warm-up traffic; each server warms itself before it reports
    ready either way."""
    for _ in range(max(replicas, 1)):
        code, error = prime(url, env)
        if error is not None:
            print(f"emotivoice-prewarm: {error}", file=sys.stderr)
        if code != 0:
            return code
    return 0


def build_parser(env: Mapping[str, str] = os.environ) -> argparse.ArgumentParser:
    """The job's arguments (the rendered CronJob's: tests/operator/test_server_contract.py)."""
    parser = argparse.ArgumentParser(
        prog="emotivoice-prewarm", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--name", required=True, help="the EmotiVoiceService")
    parser.add_argument("--window", required=True, help="the warm window to request")
    parser.add_argument("--url", required=True, help="base URL of the service, for priming")
    parser.add_argument("--namespace", default=env.get("EMOTIVOICE_NAMESPACE", "default"))
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds to wait for ready replicas"
    )
    parser.add_argument("--no-prime", action="store_true", help="only record the request")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api = client.CustomObjectsApi()
    body = api.get_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, args.name)
    try:
        request = warm_request(body, args.window, datetime.now(UTC))
        wait = lead_wait(body, args.window, datetime.now(UTC))
        if wait > 0:
            log.info("the lead of window %s begins in %.1f s; waiting for it", args.window, wait)
            time.sleep(wait)
            # Read again: the operator may have learned another lead meanwhile.
            body = api.get_namespaced_custom_object(
                GROUP, VERSION, args.namespace, PLURAL, args.name
            )
            request = warm_request(body, args.window, datetime.now(UTC))
    except SkippedOccurrence as skipped:
        log.info("%s", skipped)
        return 0
    except (UnknownWindowError, SpecError) as exc:
        # The job's one line of output: what is wrong and nothing to retry (backoff would not
        # change the spec).
        raise SystemExit(f"emotivoice-prewarm: {exc}") from None
    entry = request.to_status()
    api.patch_namespaced_custom_object_status(
        GROUP, VERSION, args.namespace, PLURAL, args.name,
        {"status": {"warmRequests": {args.window: entry}}},
    )  # fmt: skip
    log.info(
        "requested %s warm replicas for window %s until %s",
        request.replicas,
        args.window,
        entry["expiresAt"],
    )
    if args.no_prime:
        return 0

    def read_status() -> dict[str, Any]:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, args.name)
        return obj.get("status") or {}

    ready = wait_ready(read_status, request.replicas, args.timeout)
    log.info("%s of %s replicas ready; priming through %s", ready, request.replicas, args.url)
    return prime_replicas(args.url, ready, os.environ)


if __name__ == "__main__":
    sys.exit(main())
