"""The steps hack/demo-real-node.sh shares with the tests, as a command on the cluster of
KUBECONFIG (python -m tests.support.demo --help)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.cluster import Cluster, build_binaries
from tests.support.services import cache_volume
from tests.support.store import StoreSpec, deploy_model_store


def main(argv: list[str] | None = None) -> int:
    """For hack/demo.sh: the steps it shares with the tests, on the cluster of KUBECONFIG.

    python -m tests.support.demo store EXAMPLE S3_IMAGE WORKDIR
        the S3 server and model the example expects (its endpoint, Secret, uri)
    python -m tests.support.demo volume NAMESPACE CLAIM DIRECTORY
        a hostPath PersistentVolume bound to the claim
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.support.demo")
    sub = parser.add_subparsers(dest="command", required=True)
    store = sub.add_parser("store")
    store.add_argument("example", type=Path)
    store.add_argument("image")
    store.add_argument("workdir", type=Path)
    volume = sub.add_parser("volume")
    volume.add_argument("namespace")
    volume.add_argument("claim")
    volume.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    cluster = Cluster(
        kubeconfig=Path(os.environ["KUBECONFIG"]),
        kubectl_path=build_binaries("kubectl") / "kubectl",
    )
    if args.command == "store":
        spec = StoreSpec.of_example(args.example)
        served = deploy_model_store(cluster, args.image, args.workdir, spec)
        print(f"{len(served.sums)} files and SHA256SUMS in {spec.uri} at {spec.endpoint}")
    else:
        cache_volume(cluster, args.namespace, args.claim, args.directory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
