"""The rule that picks the test cluster (no cluster needed: pure function over an environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cluster import ClusterError, choose_cluster


def test_no_kubeconfig_means_local_control_plane() -> None:
    assert choose_cluster({}).local


def test_kubeconfig_is_used_as_given(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("apiVersion: v1\nkind: Config\n")
    choice = choose_cluster({"KUBECONFIG": str(config)})
    assert not choice.local
    assert choice.external_kubeconfig == config


def test_evs_local_cluster_overrides_kubeconfig(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("")
    assert choose_cluster({"KUBECONFIG": str(config), "EVS_LOCAL_CLUSTER": "1"}).local


def test_missing_kubeconfig_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match=r"is not a file.*unset it"):
        choose_cluster({"KUBECONFIG": str(tmp_path / "absent")})


def test_kubeconfig_list_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match=r"several files.*--flatten"):
        choose_cluster({"KUBECONFIG": f"{tmp_path}/a:{tmp_path}/b"})
