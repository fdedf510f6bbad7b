"""Both Dockerfiles built by Docker (BuildKit), the builder the Dockerfiles' headers name.

BuildKit reads `<Dockerfile>.dockerignore` beside a Dockerfile, which once dropped `crds/` from
the server's context while buildah (which reads no ignore file by itself) built fine. Here no
Docker engine runs (only its client is installed), so this test is skipped with that reason;
`hack/images.sh` passes buildah the same ignore file BuildKit would read (`--ignorefile`), so
the image builds of `make test` catch a context that leaves out what a Dockerfile copies.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.support.cluster import REPO


def _docker_engine() -> str | None:
    if not shutil.which("docker"):
        return "no docker client"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    return None if probe.returncode == 0 else "no Docker engine runs here (only the client)"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dockerfile", "args"),
    [
        ("operator/Dockerfile", []),
        ("server/Dockerfile", ["--build-arg", "TORCH_VARIANT=cpu"]),
    ],
)
def test_docker_builds_each_dockerfile_from_the_repository_root(
    dockerfile: str, args: list[str]
) -> None:
    reason = _docker_engine()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(
        ["docker", "build", "-f", dockerfile, *args, "-t", f"evs-test/{dockerfile.split('/')[0]}", "."],
        cwd=REPO, capture_output=True, text=True, timeout=3600,
        env=os.environ | {"DOCKER_BUILDKIT": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
