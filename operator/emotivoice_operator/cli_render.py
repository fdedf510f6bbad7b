"""``emotivoice-operator render``: what the operator would create, without a cluster.

Reads EmotiVoiceService manifests (files or directories), applies the CRD's defaults, and prints
every child as YAML on stdout, with a one-line summary per resource on stderr. The warm floor is
computed at ``--at`` (default: now), so a schedule can be checked for any instant.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from emotivoice_operator.crd import KIND
from emotivoice_operator.crd.spec import SpecError
from emotivoice_operator.desired import desired_state
from emotivoice_operator.render import Owner
from emotivoice_operator.settings import OperatorSettings

# Offline there is no API server to assign a uid; owner references show this placeholder.
OFFLINE_UID = "00000000-0000-0000-0000-000000000000"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="manifest files or directories")
    parser.add_argument(
        "--namespace", default="default", help="namespace of resources that name none"
    )
    parser.add_argument(
        "--at",
        type=_instant,
        default=None,
        help="instant for the warm floor (ISO 8601, default now)",
    )


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"--at {text!r} needs a UTC offset, e.g. {text}+00:00")
    return value.astimezone(UTC)


def load_services(paths: list[Path]) -> list[dict[str, Any]]:
    files = sorted(f for p in paths for f in ([p] if p.is_file() else p.glob("*.yaml")))
    docs = [d for f in files for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d]
    return [d for d in docs if d.get("kind") == KIND]


def render_service(
    body: dict[str, Any], namespace: str, now: datetime, settings: OperatorSettings
) -> tuple[list[dict[str, Any]], str]:
    meta = body["metadata"]
    owner = Owner(meta["name"], meta.get("namespace", namespace), OFFLINE_UID)
    desired = desired_state(body.get("spec") or {}, owner, now, {}, settings)
    nxt = f", next window {desired.next_window_text}" if desired.next_window else ""
    kinds = ", ".join(f"{m['kind']}/{m['metadata']['name']}" for m in desired.manifests)
    summary = f"{owner.namespace}/{owner.name}: warm floor {desired.warm_floor}{nxt}\n    {kinds}"
    return desired.manifests, summary


def run(args: argparse.Namespace) -> int:
    settings = OperatorSettings.from_env()
    now = args.at or datetime.now(UTC)
    services = load_services(args.paths)
    if not services:
        print(f"no {KIND} found in {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 1
    failed = 0
    out: list[dict[str, Any]] = []
    for body in services:
        try:
            manifests, summary = render_service(body, args.namespace, now, settings)
        except SpecError as exc:
            failed += 1
            print(f"{body['metadata']['name']}: {exc}", file=sys.stderr)
            continue
        out += manifests
        print(summary, file=sys.stderr)
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)
    print(
        f"rendered {len(out)} objects for {len(services) - failed} of {len(services)} {KIND}s at {now.isoformat(timespec='seconds')}",
        file=sys.stderr,
    )
    return 1 if failed else 0
