"""``emotivoice-operator recommend``: warm windows proposed from a service's Prometheus history.

Reads the service (``-f`` manifest, or ``NAME`` from the cluster with its status), queries
Prometheus for the model's busy seconds and the requests by code over ``--weeks`` weeks at a
1-minute step, and prints the ``warmPool`` block to paste with its coverage, its cost against
today's spec and a flat floor, and a backtest. The logic is in ``recommend/``; this module reads
and prints.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from emotivoice_operator.cli_preview import PreviewError, fetch_service
from emotivoice_operator.crd import CALENDAR_KIND, CALENDAR_PLURAL, GROUP, KIND, VERSION
from emotivoice_operator.crd.spec import SpecError
from emotivoice_operator.preview.plot import PlotUnavailableError
from emotivoice_operator.recommend import prometheus
from emotivoice_operator.windows.clock import UnknownZoneError, lookup_zone

if TYPE_CHECKING:
    from emotivoice_operator.recommend.history import History
    from emotivoice_operator.recommend.recommendation import Service

# The recommendation's modules (numpy) are imported when it runs: the operator image, which
# has no numpy, builds this parser too.
MINUTES_PER_WEEK = 7 * 1440

BUSY = "emotivoice_model_busy_seconds_total"
REQUESTS = "emotivoice_speech_requests_total"
# The rate window: two samples at a 1-minute scrape interval (or more at a shorter one).
RATE_WINDOW = "2m"
# One week to propose from, one to score the proposal on.
MIN_WEEKS = 2
DEFAULT_WEEKS = 4
_SLOT = re.compile(r"^([0-9]+)m$")


class RecommendError(RuntimeError):
    """Input the recommendation cannot use; the message says what to change."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name", nargs="?", help="the EmotiVoiceService to read from the cluster (KUBECONFIG)"
    )
    parser.add_argument(
        "-n", "--namespace", help="namespace of NAME (default: the kubeconfig context's)"
    )
    parser.add_argument(
        "-f",
        "--filename",
        type=Path,
        help="read the service from this manifest instead (no cluster; it may also hold "
        "EmotiVoiceCalendar objects the pool names)",
    )
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL")
    parser.add_argument(
        "--weeks",
        type=int,
        default=DEFAULT_WEEKS,
        help=f"weeks of history to read, ending at --end (default {DEFAULT_WEEKS}; "
        f"at least {MIN_WEEKS}: the last is the backtest's held-out week)",
    )
    parser.add_argument(
        "--target-utilisation",
        type=_share,
        default=0.6,
        help="busy share of each warm replica to plan for, 0-1 (default 0.6)",
    )
    parser.add_argument(
        "--slot", type=_slot, default=15, help="slot of the week, minutes (default 15m)"
    )
    parser.add_argument(
        "--selector",
        help='PromQL label matchers of the service\'s series (default namespace="NS",'
        'service="NAME": the labels a prometheus-operator ServiceMonitor on the Service NAME '
        "gives, and the e2e scrape config copies from app.kubernetes.io/instance)",
    )
    parser.add_argument(
        "--holiday",
        type=_date,
        action="append",
        default=[],
        help="YYYY-MM-DD, repeatable: left out of the estimate; later ones become warmPool.dates "
        "entries with no window",
    )
    parser.add_argument("--plot", type=Path, help="draw the last week as a PNG at this path")
    parser.add_argument(
        "--end",
        type=_instant,
        help="end of the history, ISO 8601 (without an offset: UTC); default now",
    )


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a share above 0 and at most 1 (0.6)")
    return value


def _slot(text: str) -> int:
    match = _SLOT.fullmatch(text)
    minutes = int(match[1]) if match else 0
    if not minutes or 1440 % minutes or minutes > 120:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give minutes that divide a day, at most 120m (15m, 30m, 60m)"
        )
    return minutes


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD date") from None


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args, datetime.now(UTC))
    except (RecommendError, PreviewError, prometheus.PrometheusError, PlotUnavailableError) as exc:
        print(f"recommend: {exc}", file=sys.stderr)
    except (SpecError, UnknownZoneError, ValueError) as exc:
        # SpecError and UnknownZoneError are ValueErrors: a spec field, or a bad date entry.
        print(f"recommend: {exc}", file=sys.stderr)
    return 1


def _run(args: argparse.Namespace, now: datetime) -> int:
    from emotivoice_operator.recommend import report
    from emotivoice_operator.recommend.recommendation import Options, recommend

    if args.weeks < MIN_WEEKS:
        raise RecommendError(f"--weeks {args.weeks}: give at least {MIN_WEEKS}")
    body, calendars = _service(args)
    meta = body.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace") or args.namespace or "default"
    spec = body.get("spec") or {}
    zone = lookup_zone((spec.get("warmPool") or {}).get("timeZone", "UTC"))
    selector = args.selector or f'namespace="{namespace}",service="{name}"'
    end = args.end or now
    end_s = int(end.timestamp()) // 60 * 60
    history = read_history(args.prometheus, selector, end_s, args.weeks, zone)
    service = _service_view(body, calendars)
    options = Options(args.target_utilisation, args.slot, tuple(args.holiday))
    rec = recommend(history, service, options)
    sys.stdout.write(report.render(rec, options, f"{namespace}/{name}", selector))
    if args.plot:
        from emotivoice_operator.recommend import plot

        path = plot.save(rec, options, args.plot, f"{namespace}/{name}")
        print(f"wrote {path}", file=sys.stderr)
    return 0


def read_history(url: str, selector: str, end_s: int, weeks: int, zone: Any) -> History:
    """The last ``weeks`` weeks before ``end_s`` (fewer when Prometheus has fewer whole weeks,
    at least ``MIN_WEEKS``), trimmed to whole weeks from the end."""
    import numpy as np

    from emotivoice_operator.recommend.history import build_history

    minutes = weeks * MINUTES_PER_WEEK
    start_s = end_s - 60 * minutes
    busy = prometheus.query_range(
        url, f"sum(rate({BUSY}{{{selector}}}[{RATE_WINDOW}]))", start_s + 60, end_s
    )
    if not any(s.points for s in busy):
        raise RecommendError(
            f"no {BUSY} series match {{{selector}}} in {url} over the {weeks} weeks before "
            f"{_utc(end_s)}: check the service's labels there, or pass --selector"
        )
    requests = prometheus.query_range(
        url,
        f"sum by (code) (rate({REQUESTS}{{{selector}}}[{RATE_WINDOW}]))",
        start_s + 60,
        end_s,
    )
    history = build_history(busy, requests, start_s, minutes, zone)
    have = int((~np.isnan(history.busy)).sum())
    first = int(_first_valid(history.busy))
    whole = (minutes - first) // MINUTES_PER_WEEK
    if whole < MIN_WEEKS:
        days = (minutes - first) / 1440
        raise RecommendError(
            f"too little history: {BUSY}{{{selector}}} has {days:.1f} days of samples before "
            f"{_utc(end_s)} ({have} minutes); recommend needs at least {MIN_WEEKS} whole "
            "weeks (one to propose from, one to score the proposal on)"
        )
    return history.window(minutes - whole * MINUTES_PER_WEEK, minutes)


def _first_valid(values: Any) -> int:
    import numpy as np

    valid = np.flatnonzero(~np.isnan(values))
    return int(valid[0]) if len(valid) else len(values)


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%MZ")


def _service(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The service's body and the calendars' dates by name."""
    if args.filename is None:
        if not args.name:
            raise RecommendError("name a service (NAME, with -n NAMESPACE) or give -f MANIFEST")
        body = fetch_service(args.name, args.namespace)
        names = (body.get("spec", {}).get("warmPool") or {}).get("calendars") or []
        return body, {n: _cluster_calendar(n) for n in names}
    try:
        docs = [d for d in yaml.safe_load_all(args.filename.read_text(encoding="utf-8")) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise RecommendError(f"reading {args.filename}: {exc}") from None
    services = [d for d in docs if d.get("kind") == KIND]
    if args.name:
        services = [d for d in services if (d.get("metadata") or {}).get("name") == args.name]
    if len(services) != 1:
        raise RecommendError(
            f"{args.filename} holds {len(services)} {KIND} objects"
            + (f" named {args.name!r}" if args.name else "")
            + ": give one (NAME picks it)"
        )
    calendars = {
        (d.get("metadata") or {}).get("name", ""): (d.get("spec") or {}).get("dates") or []
        for d in docs
        if d.get("kind") == CALENDAR_KIND
    }
    return services[0], calendars


def _cluster_calendar(name: str) -> list[Any]:
    from kubernetes import client

    api = client.CustomObjectsApi(client.ApiClient())
    try:
        body = api.get_cluster_custom_object(GROUP, VERSION, CALENDAR_PLURAL, name)
    except client.ApiException as exc:
        raise RecommendError(
            f"reading {CALENDAR_KIND} {name!r} (named in warmPool.calendars): "
            f"{exc.status} {exc.reason}"
        ) from None
    return list((body.get("spec") or {}).get("dates") or [])


def _service_view(body: dict[str, Any], calendars: dict[str, Any]) -> Service:
    from emotivoice_operator.recommend.recommendation import Service

    status = body.get("status")
    cold: list[float] | None = None
    learned = None
    if status:
        recent = (status.get("coldStarts") or {}).get("recent") or []
        cold = [float(s["seconds"]) for s in recent if isinstance(s.get("seconds"), int | float)]
        seconds = (status.get("leadTime") or {}).get("seconds")
        if isinstance(seconds, int | float) and math.isfinite(seconds):
            learned = timedelta(seconds=seconds)
    return Service(body.get("spec") or {}, cold, learned, calendars)
