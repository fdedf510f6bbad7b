"""Real faults against a real S3 server: each ends with its exit code and a one-line message,
and nothing half-written is ever marked complete."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.ratelimit_proxy import RateLimitProxy
from emotivoice_fetch.errors import ExitCode
from emotivoice_fetch.marker import verify_complete
from emotivoice_fetch.paths import lock_path, marker_path, staging_dir
from emotivoice_fetch.plan import covered
from tests.fetch.conftest import Result, run_fetch, start_fetch, upload
from tests.fetch.s3server import SECRET_KEY, VersityGW, random_file

SMALL = {"config.json": b"{}", "ckpt/g_00140000": os.urandom(2_000_000)}


def error_line(result: Result) -> str:
    lines = [line for line in result.out.splitlines() if "error:" in line]
    assert len(lines) == 1, result.out
    return lines[0]


def proxy_for(server: VersityGW, rate_mb: float) -> RateLimitProxy:
    return RateLimitProxy(("127.0.0.1", server.port), rate_mb * 1e6).start()


@pytest.fixture
def slow_proxy(own_gw: VersityGW) -> Iterator[RateLimitProxy]:
    proxy = proxy_for(own_gw, 10)
    try:
        yield proxy
    finally:
        proxy.stop()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def journaled_bytes(dest: Path, relpath: str) -> int:
    """What the resume journal of one file already vouches for (its lines after the header)."""
    try:
        lines = (staging_dir(dest) / "journal" / (relpath + ".parts")).read_text().splitlines()
    except FileNotFoundError:
        return 0
    ranges = []
    for line in lines[1:]:
        with contextlib.suppress(ValueError):
            start, end = (int(x) for x in line.split())
            ranges.append((start, end))
    return covered(1 << 62, ranges)


def staged_bytes(dest: Path) -> int:
    data = staging_dir(dest) / "data"
    if not data.exists():
        return 0
    return sum(os.stat(p).st_blocks * 512 for p in data.rglob("*") if p.is_file())


def test_wrong_credentials(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, SMALL)
    bad = {"AWS_ACCESS_KEY_ID": "AKIAEMOTIVOICETEST", "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
    result = run_fetch(gw, model.uri, tmp_path / "m", credentials=bad)
    assert result.rc == ExitCode.CREDENTIALS
    assert "access denied" in error_line(result)
    assert "wrong-secret" not in result.out and SECRET_KEY not in result.out
    unknown = {"AWS_ACCESS_KEY_ID": "AKIANOBODY", "AWS_SECRET_ACCESS_KEY": "x"}
    assert run_fetch(gw, model.uri, tmp_path / "m", credentials=unknown).rc == ExitCode.CREDENTIALS
    anonymous = run_fetch(gw, model.uri, tmp_path / "m", credentials={})
    assert anonymous.rc == ExitCode.CREDENTIALS
    assert not marker_path(tmp_path / "m").exists()


def test_missing_bucket(gw: VersityGW, tmp_path: Path) -> None:
    result = run_fetch(gw, "s3://no-such-bucket-here/models/m", tmp_path / "m")
    assert result.rc == ExitCode.MISSING_BUCKET
    assert "bucket 'no-such-bucket-here' does not exist" in error_line(result)


def test_missing_key(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, SMALL)
    pins = {"EMOTIVOICE_EXPECTED_SHA256": json.dumps({"ckpt/gone.bin": "0" * 64})}
    result = run_fetch(gw, model.uri, tmp_path / "m", env=pins)
    assert result.rc == ExitCode.MISSING_KEY
    assert f"missing object {model.uri}/ckpt/gone.bin" in error_line(result)
    empty = run_fetch(gw, f"s3://{model.bucket}/no/such/prefix", tmp_path / "m")
    assert empty.rc == ExitCode.MISSING_KEY
    assert "no objects under" in error_line(empty)
    manifest = run_fetch(gw, model.uri, tmp_path / "m", "--manifest", "SHA256SUMS")
    assert manifest.rc == ExitCode.MISSING_KEY
    assert "SHA256SUMS" in error_line(manifest)


def test_checksum_mismatch(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, SMALL)
    sums = model.sha256()
    sums["ckpt/g_00140000"] = "f" * 64
    dest = tmp_path / "m"
    result = run_fetch(gw, model.uri, dest, env={"EMOTIVOICE_EXPECTED_SHA256": json.dumps(sums)})
    assert result.rc == ExitCode.CHECKSUM_MISMATCH
    assert "checksum mismatch for ckpt/g_00140000: expected sha256 ffff" in error_line(result)
    assert not (dest / "ckpt/g_00140000").exists(), "a file that failed its check stays out"
    assert not marker_path(dest).exists()
    with pytest.raises(Exception, match="no completion marker"):
        verify_complete(dest)


@pytest.mark.slow
def test_store_killed_mid_download_and_restarted(
    own_gw: VersityGW, slow_proxy: RateLimitProxy, tmp_path: Path
) -> None:
    """The store dies at ~30% and comes back 2 s later; the same fetch process finishes."""
    big = random_file(tmp_path / "big.bin", 60_000_000, seed=2)
    model = upload(own_gw, {"big.bin": big, "config.json": b"{}"})
    dest = tmp_path / "m"
    pins = {"EMOTIVOICE_EXPECTED_SHA256": json.dumps(model.sha256())}
    log = tmp_path / "fetch.log"
    proc = start_fetch(
        own_gw,
        model.uri,
        dest,
        log,
        "--part-size-mb",
        "4",
        "--concurrency",
        "4",
        endpoint=slow_proxy.endpoint,
        env=pins,
    )
    try:
        wait_until(lambda: staged_bytes(dest) > 18_000_000, 60, "a third of the download")
        own_gw.kill()
        time.sleep(2)
        own_gw.start()
        assert proc.wait(timeout=90) == 0, log.read_text()
    finally:
        proc.kill()
        proc.wait()
    out = log.read_text()
    assert "retrying from byte" in out
    assert verify_complete(dest).sha256 == model.sha256()
    # Resumed, not restarted: the proxy carried the model once plus at most the parts in flight.
    assert slow_proxy.stats.downstream_bytes < 60_000_000 + 4 * 4 * 2**20 + 1_000_000


@pytest.mark.slow
def test_crashed_pod_stale_lock_and_resume(
    own_gw: VersityGW, slow_proxy: RateLimitProxy, tmp_path: Path
) -> None:
    """A fetch is SIGKILLed mid-download (lock and partial files left behind); the next pod
    waits out the lock timeout, takes the lock over and resumes from the journal."""
    big = random_file(tmp_path / "big.bin", 40_000_000, seed=3)
    model = upload(own_gw, {"big.bin": big})
    dest = tmp_path / "m"
    args = ("--part-size-mb", "2", "--concurrency", "2", "--lock-timeout", "2")
    first = start_fetch(
        own_gw, model.uri, dest, tmp_path / "1.log", *args, endpoint=slow_proxy.endpoint
    )
    try:
        # Once the journal vouches for half the file, so the crash leaves journaled parts.
        wait_until(lambda: journaled_bytes(dest, "big.bin") > 20_000_000, 60, "half journaled")
    finally:
        first.kill()
        first.wait()
    assert lock_path(dest).exists(), "the crash leaves its lock behind"
    before = slow_proxy.stats.downstream_bytes
    second = run_fetch(own_gw, model.uri, dest, *args, endpoint=slow_proxy.endpoint)
    assert second.rc == 0, second.out
    assert "recovered a stale download lock" in second.out
    assert "MB resumed" in second.out
    refetched = slow_proxy.stats.downstream_bytes - before
    assert refetched < 40_000_000 - 15_000_000, f"re-downloaded {refetched} bytes"
    assert verify_complete(dest).sha256 == model.sha256()
    assert not lock_path(dest).exists()


@pytest.mark.slow
def test_five_pods_download_once(
    own_gw: VersityGW, slow_proxy: RateLimitProxy, tmp_path: Path
) -> None:
    model = upload(
        own_gw, {"big.bin": random_file(tmp_path / "big.bin", 20_000_000, seed=4), "c": b"1"}
    )
    dest = tmp_path / "shared"
    procs = [
        start_fetch(
            own_gw,
            model.uri,
            dest,
            tmp_path / f"{i}.log",
            "--concurrency",
            "4",
            endpoint=slow_proxy.endpoint,
        )
        for i in range(5)
    ]
    try:
        codes = [p.wait(timeout=90) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    logs = [(tmp_path / f"{i}.log").read_text() for i in range(5)]
    assert codes == [0] * 5, logs
    assert sum("downloaded 20.0 MB" in out for out in logs) == 1, logs
    assert sum("completed by another pod" in out or "cache complete" in out for out in logs) == 4
    assert slow_proxy.stats.downstream_bytes < 21_000_000, "the model crossed the wire once"
    assert verify_complete(dest).sha256 == model.sha256()


def in_private_tmpfs(mountpoint: Path, options: str, around: str = 'exec "$@"') -> list[str]:
    """A command prefix that runs its command with a tmpfs on `mountpoint`, in a private mount
    namespace (nothing to unmount afterwards, invisible to the rest of the machine). As root
    `unshare --mount` suffices; otherwise a user namespace maps us to root inside it. `around`
    is the shell snippet that runs the command ("$@") inside the namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed: cannot make a small file system")
    mount = 'mount -t tmpfs -o "$1" tmpfs "$2" && shift 2'
    for flags in (["--mount"], ["--user", "--map-root-user", "--mount"]):
        probe = subprocess.run(
            ["unshare", *flags, "sh", "-c", mount, "sh", options, str(mountpoint)],
            capture_output=True,
            check=False,
            timeout=30,
        )
        if probe.returncode == 0:
            script = f"{mount} && {{ {around}; }}"
            return ["unshare", *flags, "sh", "-c", script, "sh", options, str(mountpoint)]
    pytest.skip(f"cannot mount a tmpfs here (no root, no user namespaces): {probe.stderr!r}")


def test_disk_full(gw: VersityGW, tmp_path: Path) -> None:
    """The volume is too small for the model: stop before downloading, say so."""
    model = upload(gw, {"a.bin": os.urandom(6_000_000), "b.bin": os.urandom(6_000_000)})
    volume = tmp_path / "volume"
    volume.mkdir()
    report = tmp_path / "report.txt"  # written inside the namespace: the tmpfs vanishes with it
    around = f'"$@"; rc=$?; ls -a {volume}/m > {report} 2>&1; exit $rc'
    result = run_fetch(
        gw, model.uri, volume / "m", prefix_cmd=in_private_tmpfs(volume, "size=8m", around)
    )
    assert result.rc == ExitCode.DISK_FULL, result.out
    assert "disk full: 12.0 MB still to download" in error_line(result)
    assert ".emotivoice-complete.json" not in report.read_text()


def test_disk_fills_during_download(gw: VersityGW, tmp_path: Path) -> None:
    """Free space was enough at the start, then another writer took it: ENOSPC mid-download."""
    model = upload(gw, {"a.bin": os.urandom(6_000_000)})
    volume = tmp_path / "volume"
    volume.mkdir()
    report = tmp_path / "report.txt"
    staging = f"{volume}/m/.emotivoice-partial/data"
    around = (
        f"(while [ ! -d {staging} ]; do sleep 0.02; done; head -c 5000000 /dev/zero > {volume}/hog) & "
        f'"$@"; rc=$?; wait; ls -a {volume}/m > {report} 2>&1; exit $rc'
    )
    proxy = proxy_for(gw, 3)  # slow enough for the other writer to win the race
    try:
        prefix = in_private_tmpfs(volume, "size=8m", around)
        result = run_fetch(gw, model.uri, volume / "m", endpoint=proxy.endpoint, prefix_cmd=prefix)
    finally:
        proxy.stop()
    assert result.rc == ExitCode.DISK_FULL, result.out
    assert "disk full while writing a.bin" in error_line(result)
    listing = report.read_text().split()
    assert "a.bin" not in listing and ".emotivoice-complete.json" not in listing


def test_permission_denied(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, SMALL)
    volume = tmp_path / "ro"
    volume.mkdir()
    prefix = in_private_tmpfs(volume, "ro,size=1m")
    result = run_fetch(gw, model.uri, volume / "m", prefix_cmd=prefix)
    assert result.rc == ExitCode.PERMISSION_DENIED, result.out
    assert "read-only file system while creating" in error_line(result)
    if os.geteuid() == 0 and shutil.which("setpriv"):
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        result = run_fetch(gw, model.uri, locked / "m", prefix_cmd=nobody)
        assert result.rc == ExitCode.PERMISSION_DENIED, result.out
        assert "permission denied while creating" in error_line(result)
