"""``emotivoice-operator preview``: what a warm-pool schedule will do, before it is applied.

From a manifest (``-f``, no cluster needed): the warm floor over the coming days in the pool's
zone, each pre-warm CronJob's runs as the operator renders them, DST changes, overlapping
windows, and the replica-hours the schedule costs against a flat floor of its peak; as text, and
with ``--plot PATH`` as a PNG. With ``--name`` it reads the resource from the cluster
(KUBECONFIG) and overlays the cold starts and misses its status recorded, then what each window
cost (status.cost: warm and served replica-hours, requests its lead met, cold starts while
open); ``-f`` and ``--name`` together preview an edited manifest against what the running
resource went through.

Calendars (``warmPool.calendars``): read from ``--calendar FILE`` (EmotiVoiceCalendar manifests,
repeatable) when given, which wins; else from the cluster when a kubeconfig works; a calendar
found in neither counts as empty, as the operator would count a missing one, and the preview
says so.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from emotivoice_operator.cli_render import load_services
from emotivoice_operator.crd import CALENDAR_KIND, CALENDAR_PLURAL, GROUP, KIND, PLURAL, VERSION
from emotivoice_operator.crd.spec import SpecError
from emotivoice_operator.preview.cost import cost_lines
from emotivoice_operator.preview.recorded import Recorded, read_recorded
from emotivoice_operator.preview.text import render_text
from emotivoice_operator.preview.timeline import MAX_DAYS, Preview, build_preview, pool_zone
from emotivoice_operator.settings import OperatorSettings
from emotivoice_operator.windows.clock import local_to_utc

DEFAULT_DAYS = 7


class PreviewError(RuntimeError):
    """A preview that cannot be made; the message says which option to change."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="append",
        type=Path,
        default=[],
        help="EmotiVoiceService manifest file or directory (repeatable); no cluster needed",
    )
    parser.add_argument(
        "--name",
        help="read this EmotiVoiceService from the cluster (KUBECONFIG) and overlay the cold "
        "starts and misses its status recorded; with -f, the manifest of that name is previewed",
    )
    parser.add_argument(
        "--namespace",
        help="namespace of --name (default: the kubeconfig context's) and of manifests that "
        "name none (default: default)",
    )
    parser.add_argument(
        "--start",
        type=_start_text,
        help="first instant of the period, ISO 8601: with an offset (2025-03-03T00:00+08:00) "
        "an instant, without one a wall time in warmPool.timeZone (2025-03-03T00:00); "
        "default now, or with --name DAYS before now (the recorded past)",
    )
    parser.add_argument(
        "--days",
        type=_days,
        default=DEFAULT_DAYS,
        help=f"local days to preview, 1-{MAX_DAYS} (default {DEFAULT_DAYS})",
    )
    parser.add_argument(
        "--calendar",
        dest="calendar_paths",
        action="append",
        type=Path,
        default=[],
        help="EmotiVoiceCalendar manifest file or directory (repeatable) for the calendars "
        "warmPool.calendars names; without it they are read from the cluster (KUBECONFIG) when "
        "one is reachable; a calendar found nowhere counts as empty (the preview says so)",
    )
    parser.add_argument("--plot", type=Path, help="also draw the preview as a PNG at this path")


def _start_text(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time; write e.g. 2025-03-03T00:00+08:00 or 2025-03-03"
        ) from None


def _days(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r}: preview a whole number of days, 1-{MAX_DAYS}")
    return int(text)


def resolve_start(
    given: datetime | None, zone: ZoneInfo, now: datetime, days: int, recorded_past: bool
) -> datetime:
    """The period's first instant (UTC): ``--start`` as an instant, a naive one read as a wall
    time in the pool's zone; else ``now``, or ``days`` before it when looking at a recorded past."""
    if given is None:
        return now - timedelta(days=days) if recorded_past else now
    if given.tzinfo is None:
        return local_to_utc(given, zone)
    return given.astimezone(UTC)


def run(args: argparse.Namespace) -> int:
    try:
        previews = _previews(args, datetime.now(UTC))
    except (PreviewError, SpecError) as exc:
        print(f"preview: {exc}", file=sys.stderr)
        return 1
    for preview, recorded in previews:
        sys.stdout.write(render_text(preview, recorded))
        if recorded is not None and recorded.cost is not None:
            sys.stdout.write(
                "\n" + "\n".join(cost_lines(recorded.cost, list(preview.windows))) + "\n"
            )
    if args.plot:
        from emotivoice_operator.preview import plot

        if len(previews) != 1:
            print(
                f"preview: --plot draws one resource and {len(previews)} were found; "
                "pass a file that holds one",
                file=sys.stderr,
            )
            return 1
        try:
            path = plot.save(plot.figure(*previews[0]), args.plot)
        except plot.PlotUnavailableError as exc:
            print(f"preview: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _previews(args: argparse.Namespace, now: datetime) -> list[tuple[Preview, Recorded | None]]:
    if not args.paths and not args.name:
        raise PreviewError(
            "nothing to preview: give a manifest with -f FILE, or a resource in the cluster "
            "with --name NAME"
        )
    recorded: Recorded | None = None
    bodies: list[dict[str, Any]]
    if args.name:
        live = fetch_service(args.name, args.namespace)
        recorded = read_recorded(live.get("status"))
        bodies = [live]
    if args.paths:
        bodies = load_services(args.paths)
        if args.name:
            bodies = [b for b in bodies if (b.get("metadata") or {}).get("name") == args.name]
        if not bodies:
            named = f" named {args.name!r}" if args.name else ""
            raise PreviewError(
                f"no {KIND}{named} in {', '.join(map(str, args.paths))}: -f takes manifests "
                f"with kind: {KIND}"
            )
    settings = OperatorSettings.from_env()
    given = load_calendars(getattr(args, "calendar_paths", []) or [])
    out = []
    for body in bodies:
        spec = body.get("spec") or {}
        start = resolve_start(args.start, pool_zone(spec), now, args.days, args.name is not None)
        calendars = {n: given.get(n) or fetch_calendar(n) for n in _calendar_names(spec)}
        preview = build_preview(
            body, start, args.days, settings, args.namespace or "default", calendars
        )
        out.append((preview, recorded))
    return out


def _calendar_names(spec: dict[str, Any]) -> list[str]:
    names = (spec.get("warmPool") or {}).get("calendars") or []
    return [n for n in names if isinstance(n, str)]


def load_calendars(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """The EmotiVoiceCalendars in ``paths`` (files or directories of YAML), by name."""
    files = sorted(f for p in paths for f in ([p] if p.is_file() else p.glob("*.yaml")))
    docs = [d for f in files for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d]
    return {
        d["metadata"]["name"]: d
        for d in docs
        if d.get("kind") == CALENDAR_KIND and (d.get("metadata") or {}).get("name")
    }


def fetch_calendar(name: str) -> dict[str, Any] | None:
    """The EmotiVoiceCalendar ``name`` from the cluster; None when it does not exist or no
    cluster can be read (the preview then counts it empty and says so)."""
    from kubernetes import client, config
    from urllib3.exceptions import HTTPError

    try:
        config.load_kube_config()
        api = client.CustomObjectsApi(client.ApiClient())
        return dict(
            api.get_cluster_custom_object(GROUP, VERSION, CALENDAR_PLURAL, name, _request_timeout=5)
        )
    except (config.ConfigException, OSError, client.ApiException, HTTPError):
        return None


def fetch_service(name: str, namespace: str | None) -> dict[str, Any]:
    """The EmotiVoiceService as the API server has it (spec and status), via KUBECONFIG."""
    from kubernetes import client, config
    from urllib3.exceptions import HTTPError

    try:
        config.load_kube_config()
        if namespace is None:
            _, context = config.list_kube_config_contexts()
            namespace = (context or {}).get("context", {}).get("namespace") or "default"
    except (config.ConfigException, OSError) as exc:
        raise PreviewError(
            f"--name reads the resource from a cluster, but no kubeconfig could be loaded "
            f"({exc}); set KUBECONFIG, or preview a manifest with -f"
        ) from None
    api = client.CustomObjectsApi(client.ApiClient())
    try:
        body = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except client.ApiException as exc:
        if exc.status == 404:
            raise PreviewError(
                f"no {KIND} {name!r} in namespace {namespace!r} (kubectl get evs -A lists them; "
                "--namespace picks another)"
            ) from None
        raise PreviewError(
            f"reading {KIND} {namespace}/{name}: {exc.status} {exc.reason}"
        ) from None
    except HTTPError as exc:
        raise PreviewError(
            f"reading {KIND} {namespace}/{name}: cannot reach the cluster ({exc})"
        ) from None
    return dict(body)
