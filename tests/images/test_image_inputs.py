"""The facts the image builds and the real node share, where two places must agree.

No builder runs here (the end-to-end suite builds and runs the images): these read the
Dockerfiles, pyproject.toml and hack/node.env, so a drift fails in seconds on any machine.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from server import image_build
from tests.support import realnode
from tests.support.store import StoreSpec

REPO = Path(__file__).resolve().parents[2]


def _requirement(name: str, requirements: list[str]) -> str:
    [found] = [r for r in requirements if re.match(rf"{name}\b", r)]
    return found.replace(" ", "")


def test_the_server_images_torch_layer_has_pyprojects_bounds() -> None:
    server_extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["server"]
    dockerfile = (REPO / "server" / "Dockerfile").read_text()
    [pinned] = re.findall(r'pip install \$PIP_CACHE_FLAG "(torch[^"]*)"', dockerfile)
    assert pinned.replace(" ", "") == _requirement("torch", server_extra)


def test_both_dockerfiles_take_their_base_as_an_argument_with_a_public_default() -> None:
    for path, arg in (("operator/Dockerfile", "PYTHON_BASE"), ("server/Dockerfile", "CUDA_BASE")):
        text = (REPO / path).read_text()
        default = re.search(rf"^ARG {arg}=(\S+)$", text, re.MULTILINE)
        assert default is not None, f"{path}: no ARG {arg}=DEFAULT"
        assert not default.group(1).startswith("localhost"), path
        assert re.search(rf"^FROM \${{{arg}}}", text, re.MULTILINE), path
        # The pip cache stays out of the image unless a build mounts one.
        assert "ARG PIP_CACHE_FLAG=--no-cache-dir" in text, path


def test_the_build_context_includes_what_the_dockerfiles_copy() -> None:
    ignore = (REPO / "server" / "Dockerfile.dockerignore").read_text().split()
    for path in ("server/Dockerfile", "operator/Dockerfile"):
        for copied in re.findall(r"^COPY (?!--from)(\S+)", (REPO / path).read_text(), re.M):
            parents = [copied, *(str(p) for p in Path(copied).parents if str(p) != ".")]
            assert any(f"!{p}/" in ignore or f"!{p}" in ignore for p in parents), (path, copied)


def test_the_registry_address_and_the_image_names_agree() -> None:
    facts = realnode.node_facts()
    assert facts["REGISTRY"].split(":")[1] == facts["REGISTRY_ADDR"].split(":")[1]
    assert facts["REGISTRY_ADDR"].startswith("127.0.0.1:")  # loopback only
    for image in ("PAUSE_IMAGE", "COREDNS_IMAGE"):
        assert facts[image].startswith(facts["REGISTRY"] + "/"), image


def test_the_demo_serves_the_minimal_example_unchanged() -> None:
    store = StoreSpec.of_example(REPO / "examples" / "minimal-minio.yaml")
    assert store.endpoint == "http://minio.minio.svc:9000"
    assert store.uri.startswith("s3://")
    assert store.access_key and store.secret_key


def test_the_image_layers_install_every_requirement_of_the_extras_but_torch() -> None:
    """The dependency layer comes from pyproject.toml; the package itself goes in --no-deps, so
    a requirement missing here would be missing in the image."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    lines = image_build.extras_requirements(pyproject, ["server", "operator"], {"torch"})
    names = {image_build.name_of(line) for line in lines}
    extras = pyproject["project"]["optional-dependencies"]
    wanted = {
        image_build.name_of(r)
        for extra in ("server", "operator", "fetch")
        for r in extras[extra]
        if not r.startswith(pyproject["project"]["name"])
    }
    assert names == wanted - {"torch"}
    assert len(lines) == len(set(lines))


def test_an_unknown_extra_is_named() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    with pytest.raises(ValueError, match="no extra 'gpu'"):
        image_build.extras_requirements(pyproject, ["gpu"], set())


def test_the_cpu_variant_prunes_only_unmapped_cuda_files(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    for rel in (
        "nvidia/cu13/lib/libcudart.so.13",
        "nvidia/cudnn/lib/libcudnn.so.9",
        "nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9",
        "nvidia/cudnn/__init__.py",
        "triton/_C/libtriton.so",
        "torch/lib/libtorch_cpu.so",
    ):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"x")
    mapped = {
        str(site / "nvidia/cu13/lib/libcudart.so.13"),
        str(site / "nvidia/cudnn/lib/libcudnn.so.9"),
    }
    unused = image_build.unused_cuda_files(site, mapped)
    assert [p.relative_to(site).as_posix() for p in unused] == [
        "nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9",
        "triton/_C/libtriton.so",
    ]


def test_this_process_sees_its_own_mapped_libraries() -> None:
    import _ssl  # noqa: F401 (an extension module: a mapped file)

    mapped = image_build.mapped_files()
    assert any(Path(p).name.startswith("_ssl") for p in mapped)
