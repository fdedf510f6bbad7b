"""What each server image variant weighs, from the registry's own manifests, in one run.

Builds both variants of server/Dockerfile (hack/images.sh server server-cpu: a cache hit when
their inputs did not change; a cold CUDA build takes ~10 min and ~10 GB of disk, which is why
`make test` builds only the CPU variant it runs) and reads the layer sizes a node pulls (gzip)
from the local registry.

Targets (ratios of this run): CPU variant <= 0.8x the CUDA variant's bytes to pull; our code
(the top layers) under 32 MiB in both, so a code change re-ships megabytes.

    python bench/images_bench.py            (make bench-images; root, like hack/images.sh)
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import realnode  # noqa: E402

CPU_TARGET = 0.8
CODE_LAYERS = 4  # server/Dockerfile's steps after the dependency layer: our code and config
CODE_LIMIT = 32 * 2**20


@contextlib.contextmanager
def registry_running() -> Iterator[None]:
    """The node's registry when it runs, else one of our own for the while (its blobs)."""
    addr = realnode.node_facts()["REGISTRY_ADDR"]

    def up() -> bool:
        try:
            urllib.request.urlopen(f"http://{addr}/v2/", timeout=2).close()
        except OSError:
            return False
        return True

    if up():
        yield
        return
    process = subprocess.Popen(
        ["bash", str(REPO / "hack" / "node.sh"), "registry"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not up():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the local registry did not start (hack/node.sh registry)")
            time.sleep(0.2)
        yield
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=10)


def mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB" if size < 1e9 else f"{size / 1e9:.2f} GB"


def main() -> int:
    if os.geteuid() != 0:
        print(
            "bench-images needs root (buildah's overlay mounts, as hack/images.sh)", file=sys.stderr
        )
        return 2
    print("building both server variants (a cache hit when unchanged) ...", file=sys.stderr)
    refs = realnode.build_images(
        "server", "server-cpu", on_line=lambda line: print(line, file=sys.stderr)
    )
    with registry_running():
        layers = {name: realnode.image_layer_sizes(refs[name]) for name in ("server", "server-cpu")}
    cuda, cpu = (sum(layers[n]) for n in ("server", "server-cpu"))
    print(f"{'variant':<12}{'to pull':>10}{'layers':>8}{'biggest':>10}{'code (top)':>12}")
    for name, sizes in layers.items():
        code = sum(sizes[-CODE_LAYERS:])
        print(f"{name:<12}{mb(sum(sizes)):>10}{len(sizes):>8}{mb(max(sizes)):>10}{mb(code):>12}")
    ratio = cpu / cuda
    checks = [
        (
            ratio <= CPU_TARGET,
            f"CPU variant {ratio:.2f}x the CUDA variant's bytes (<= {CPU_TARGET})",
        ),
    ]
    for name, sizes in layers.items():
        code = sum(sizes[-CODE_LAYERS:])
        checks.append((code < CODE_LIMIT, f"{name}: a code change re-ships {mb(code)} (< 32 MiB)"))
    for ok, what in checks:
        print(f"target {'met' if ok else 'MISSED'}: {what}")
    print(
        json.dumps({"bytes": {n: sum(s) for n, s in layers.items()}, "cpu_ratio": round(ratio, 3)})
    )
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
