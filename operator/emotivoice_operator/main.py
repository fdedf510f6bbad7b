"""``emotivoice-operator``: run the operator, or render manifests offline.

emotivoice-operator run [--namespace NS|GLOB ...] watch EmotiVoiceServices and reconcile
emotivoice-operator render PATH ... [--at TIME]    print the children each resource would get
emotivoice-operator preview -f FILE [--days 7] [--plot week.png]
                                                   what the warm-pool schedule does over the coming days
emotivoice-operator recommend --prometheus URL (-n NS NAME | -f FILE) [--weeks 4]
                                                   warm windows proposed from the service's traffic
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from emotivoice_operator import cli_preview, cli_render


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotivoice-operator", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="run the operator against the current kubeconfig or in-cluster identity"
    )
    run.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace, or the namespaces matching this glob ('team-*'; "
        "'!name' excludes) (repeatable); default: all. Two operators that watch the same "
        "namespace reconcile the same services and fight over them",
    )
    run.add_argument(
        "--peering",
        default=None,
        help="kopf peering name: replicas elect one active operator (needs the peering CRDs)",
    )
    run.add_argument(
        "--liveness", default="http://0.0.0.0:8080/healthz", help="liveness endpoint URL"
    )
    cli_render.add_arguments(sub.add_parser("render", help="render manifests offline (no cluster)"))
    cli_preview.add_arguments(
        sub.add_parser(
            "preview",
            help="the warm floor, pre-warm runs, DST changes and cost of a schedule (no cluster "
            "needed; --name overlays what a running resource recorded)",
        )
    )
    from emotivoice_operator import cli_recommend

    cli_recommend.add_arguments(
        sub.add_parser(
            "recommend",
            help="warm windows proposed from the service's Prometheus history, with their "
            "coverage, cost and a backtest (needs numpy; --plot needs matplotlib)",
        )
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "render":
        return cli_render.run(args)
    if args.command == "preview":
        return cli_preview.run(args)
    if args.command == "recommend":
        from emotivoice_operator import cli_recommend

        return cli_recommend.run(args)
    import kopf

    from emotivoice_operator.controller import handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=False)
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=peering_priority(time.time()) if args.peering else None,
        liveness_endpoint=args.liveness,
    )
    return 0


# Above any millisecond timestamp of this era, so every priority is positive.
PRIORITY_CEILING = 10**13


def peering_priority(started: float) -> int:
    """This replica's kopf peering priority: the older a replica, the higher.

    kopf pauses every operator that sees a live peer of the *same* priority (all of them, itself
    included), so replicas of one Deployment, which share their arguments, stood still together
    (the fault suite's HA test found neither reconciling). Priorities from the start time (ms)
    make the oldest replica the active one, and a replica started later (a rollout, a
    rescheduled pod) waits instead of taking over.
    """
    return PRIORITY_CEILING - int(started * 1000)


if __name__ == "__main__":
    sys.exit(main())
