"""``preview --name`` against a real API server: the resource's spec and what its status recorded,
read through KUBECONFIG as a user's shell would.

No operator runs: the status is written here through the status subresource, as the operator
writes it, so the API server prunes whatever the CRD does not declare, exactly as it would for
the operator. What the preview can place therefore follows the CRD in crds/: fields it prunes
(an older CRD: coldStarts.recent[] with pod and seconds only) must read as absent, not fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from emotivoice_operator.crd import CRD
from emotivoice_operator.preview.recorded import read_recorded
from tests.support.cluster import Cluster
from tests.support.invalid_specs import valid_resource
from tests.support.operator_process import install_crd

pytestmark = pytest.mark.cluster

NAME = "tts-preview"
# Monday 3 March 2025 in Shanghai, the resource's zone: its morning window opens at 09:00 (01:00Z).
START = "2025-03-03T00:00"
STATUS: dict[str, Any] = {
    "coldStarts": {
        "count": 3,
        "recent": [
            {"pod": f"{NAME}-a", "at": "2025-03-03T01:05:00Z", "seconds": 41.5, "inWindow": True},
            {"pod": f"{NAME}-b", "at": "2025-03-04T06:00:00Z", "seconds": 9.0, "inWindow": False},
            {"pod": f"{NAME}-c", "seconds": 7.0},
        ],
    },
    "misses": {
        "recent": [
            {"window": "morning", "at": "2025-03-03T01:00:00Z", "short": 1, "lateSeconds": 65}
        ]
    },
}


def _status_keeps(*path: str) -> bool:
    """Whether the API server keeps a status field at ``path`` under the CRD in crds/: declared,
    or below a schema that preserves unknown fields (otherwise it is pruned)."""
    node = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    for key in path:
        node = node.get("items", node)
        child = (node.get("properties") or {}).get(key)
        if child is None:
            return bool(node.get("x-kubernetes-preserve-unknown-fields"))
        node = child
    return True


def _preview(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emotivoice_operator.main", "preview", *args],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def recorded_service(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """The resource with STATUS written through the status subresource; returns the stored status."""
    install_crd(cluster)
    cluster.apply(valid_resource(NAME), namespace=namespace)
    cluster.kubectl(
        "patch", "evs", NAME, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": STATUS}),
    )  # fmt: skip
    return cluster.get_json("evs", NAME, "-n", namespace).get("status") or {}


def test_name_overlays_the_recorded_cold_starts_and_misses(
    cluster: Cluster, namespace: str, recorded_service: dict[str, Any], tmp_path: Path
) -> None:
    png = tmp_path / "week.png"
    result = _preview(
        cluster, "--name", NAME, "--namespace", namespace, "--start", START, "--days", "2",
        "--plot", str(png),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"{NAME} ({namespace}): 2 days from Mon 2025-03-03 00:00 Asia/Shanghai")
    assert "Mon 2025-03-03 08:50 -> 12:00" in out  # the spec as the API server defaulted it
    assert "Recorded by the operator (status): 3 recent cold starts" in out
    stored = read_recorded(recorded_service)
    assert [c.pod for c in stored.cold_starts] == [f"{NAME}-a", f"{NAME}-b", f"{NAME}-c"]
    if _status_keeps("coldStarts", "recent", "at"):
        assert "Mon 2025-03-03 09:05  cold start  tts-preview-a: 41.5 s to Ready" in out
        assert "Tue 2025-03-04 14:00  cold start  tts-preview-b: 9.0 s to Ready" in out
        assert "1 without a time" in out
    else:  # this CRD prunes the times: the starts are counted, not placed
        assert "cold start  " not in out
        assert "3 without a time (recorded by an older operator)" in out
    if _status_keeps("misses", "recent", "at"):
        assert "Mon 2025-03-03 09:00  miss        morning: 1 short, Ready 65 s late" in out
    else:
        assert "0 recent misses" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_an_edited_manifest_is_previewed_against_the_running_resource(
    cluster: Cluster, namespace: str, recorded_service: dict[str, Any], tmp_path: Path
) -> None:
    edited = valid_resource(NAME)
    edited["spec"]["warmPool"]["windows"][0].update(
        name="early", start="08:00", end="11:00", leadTime="30m"
    )
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(edited), encoding="utf-8")
    result = _preview(
        cluster, "-f", str(path), "--name", NAME, "--namespace", namespace, "--start", START,
        "--days", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Mon 2025-03-03 07:30 -> 11:00" in result.stdout
    assert "Recorded by the operator (status): 3 recent cold starts" in result.stdout


def test_a_missing_resource_names_the_namespace(cluster: Cluster, namespace: str) -> None:
    result = _preview(cluster, "--name", "nope", "--namespace", namespace)
    assert result.returncode == 1
    assert f"no EmotiVoiceService 'nope' in namespace '{namespace}'" in result.stderr
