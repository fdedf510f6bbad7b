"""The --after-verify hook point: runs after verification, its outputs recorded or cleaned."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emotivoice_fetch.errors import ExitCode
from emotivoice_fetch.marker import IncompleteModel, verify_complete
from emotivoice_fetch.paths import marker_path
from tests.fetch.conftest import run_fetch, upload
from tests.fetch.s3server import VersityGW
from tests.fetch.test_fetch_faults import in_private_tmpfs

FILES = {"config.json": b"{}", "ckpt/g_00140000": os.urandom(500_000)}
HOOK = "tests.fetch.hooks:derive"


def test_artifacts_are_recorded_and_checked(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    result = run_fetch(gw, model.uri, dest, "--after-verify", HOOK)
    assert result.rc == 0, result.out
    complete = verify_complete(dest)
    sums = model.sha256()
    expected = {f"derived/{sums[rel][:16]}.meta" for rel in FILES}
    assert set(complete.artifacts) == expected
    assert complete.after_verify == HOOK

    warm = run_fetch(gw, model.uri, dest, "--after-verify", HOOK)
    assert "cache complete" in warm.out

    artifact = dest / sorted(expected)[0]
    artifact.write_text("tampered\n")
    with pytest.raises(IncompleteModel):
        verify_complete(dest)


def test_adding_or_changing_the_hook_reruns_only_the_hook(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    assert run_fetch(gw, model.uri, dest).rc == 0
    inode = (dest / "ckpt/g_00140000").stat().st_ino
    with_hook = run_fetch(gw, model.uri, dest, "--after-verify", HOOK)
    assert with_hook.rc == 0, with_hook.out
    assert "downloading" not in with_hook.out
    assert (dest / "ckpt/g_00140000").stat().st_ino == inode
    old_artifacts = set(verify_complete(dest).artifacts)

    other = run_fetch(gw, model.uri, dest, "--after-verify", "tests.fetch.hooks:derive_other")
    assert other.rc == 0, other.out
    assert set(verify_complete(dest).artifacts) == {"summary.txt"}
    assert not any((dest / rel).exists() for rel in old_artifacts), "obsolete artifacts removed"


def test_failing_hook_leaves_no_output_and_no_marker(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    result = run_fetch(gw, model.uri, dest, "--after-verify", "tests.fetch.hooks:fail_midway")
    assert result.rc == ExitCode.HOOK_FAILED
    assert "converter ran out of memory" in result.out
    assert not (dest / "derived" / "half.bin").exists()
    assert not marker_path(dest).exists()
    # The verified downloads are kept: a fixed hook runs without downloading again.
    fixed = run_fetch(gw, model.uri, dest, "--after-verify", HOOK)
    assert fixed.rc == 0, fixed.out
    assert "downloading" not in fixed.out


def test_hook_must_not_modify_model_files(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, FILES)
    result = run_fetch(gw, model.uri, tmp_path / "m", "--after-verify", "tests.fetch.hooks:spoil")
    assert result.rc == ExitCode.HOOK_FAILED
    assert "modified model file" in result.out
    assert not marker_path(tmp_path / "m").exists()


def test_unknown_hook_fails_before_downloading(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, FILES)
    result = run_fetch(gw, model.uri, tmp_path / "m", "--after-verify", "tests.fetch.hooks:nope")
    assert result.rc == ExitCode.USAGE
    assert "has no function 'nope'" in result.out
    assert not (tmp_path / "m" / "config.json").exists()


def test_a_hook_out_of_space_exits_disk_full(gw: VersityGW, tmp_path: Path) -> None:
    """Issue 16: safetensors running out of space in the hook (SafetensorError, not OSError)
    used to exit 11; on a real 8 MB file system it is the disk-full exit, outputs removed."""
    model = upload(gw, FILES)
    volume = tmp_path / "volume"
    volume.mkdir()
    report = tmp_path / "report.txt"  # written inside the namespace: the tmpfs vanishes with it
    around = f'"$@"; rc=$?; ls -a {volume}/m > {report} 2>&1; exit $rc'
    result = run_fetch(
        gw, model.uri, volume / "m", "--after-verify", "tests.fetch.hooks:large_safetensors",
        prefix_cmd=in_private_tmpfs(volume, "size=8m", around),
    )  # fmt: skip
    assert result.rc == ExitCode.DISK_FULL, result.out
    assert "disk full while running --after-verify" in result.out
    listing = report.read_text()
    assert "big.safetensors" not in listing and ".emotivoice-complete.json" not in listing
    assert "config.json" in listing  # the verified download is kept for the next try


def test_the_free_space_check_counts_what_the_hook_will_write(
    gw: VersityGW, tmp_path: Path
) -> None:
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    result = run_fetch(gw, model.uri, dest, "--after-verify", "tests.fetch.hooks:huge")
    assert result.rc == ExitCode.DISK_FULL, result.out
    assert "for the --after-verify hook's outputs" in result.out
    assert not (dest / "config.json").exists()  # stopped before downloading


def test_a_warm_start_does_not_import_the_hook(gw: VersityGW, tmp_path: Path) -> None:
    """The marker says which hook made the artifacts: a warm start only compares that."""
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    imports = tmp_path / "imports.log"
    hook = "tests.fetch.hook_import_probe:touch"
    env = {"EMOTIVOICE_TEST_IMPORT_LOG": str(imports)}
    cold = run_fetch(gw, model.uri, dest, "--after-verify", hook, env=env)
    assert cold.rc == 0, cold.out
    assert imports.read_text() == "imported\n"
    warm = run_fetch(gw, model.uri, dest, "--after-verify", hook, env=env)
    assert warm.rc == 0 and "cache complete" in warm.out, warm.out
    assert imports.read_text() == "imported\n"  # not imported again
    missing = run_fetch(gw, model.uri, tmp_path / "x", "--after-verify", "tests.fetch.nope:f")
    assert missing.rc == ExitCode.USAGE and "tests.fetch.nope" in missing.out
