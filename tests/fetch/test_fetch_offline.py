"""A verified cache and a store that cannot be asked: stopped, hung (accepts, never answers),
refusing connections or refusing our credentials. One bounded check, then the pod starts on
the cache, and says so.

Before issue 17 a hung store held the fetch step for 324 s (ten attempts at a 30 s read timeout)
and a refused port for 23 s before the cache was used."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from emotivoice_fetch import report
from emotivoice_fetch.config import DEFAULT_REMOTE_CHECK_TIMEOUT_S
from emotivoice_fetch.durability import BOOT_ID_ENV
from emotivoice_fetch.errors import ExitCode
from emotivoice_fetch.marker import verify_complete
from emotivoice_fetch.paths import marker_path
from tests.fetch.conftest import Model, Result, run_fetch, upload
from tests.fetch.hung import HungListener
from tests.fetch.s3server import ACCESS_KEY, VersityGW, free_port

FILES = {"config.json": b'{"a": 1}', "ckpt/g.pth": os.urandom(1_500_000)}
CHECK_S = 2.0  # --remote-check-timeout in these tests
# Interpreter start and the marker check come on top of the check itself; the old behaviour
# took 11x (refused) to 160x (hung) this long.
WALL_FACTOR = 3


def read_report(path: Path) -> report.FetchReport:
    got = report.parse(path.read_text())
    assert got is not None, path.read_text()
    return got


def timed_fetch(
    gw: VersityGW,
    model: Model,
    dest: Path,
    endpoint: str,
    *extra: str,
    env: dict[str, str] | None = None,
) -> tuple[Result, float, report.FetchReport]:
    path = dest.parent / "report.json"
    start = time.monotonic()
    result = run_fetch(
        gw, model.uri, dest, "--report", str(path), *extra, endpoint=endpoint, env=env
    )
    wall = time.monotonic() - start
    assert result.rc == 0, result.out
    return result, wall, read_report(path)


@pytest.mark.parametrize("store", ["hung", "refused", "stopped"])
def test_verified_cache_starts_after_one_bounded_check(
    store: str, gw: VersityGW, hung: HungListener, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server = request.getfixturevalue("own_gw") if store == "stopped" else gw
    model = upload(server, FILES)
    dest = tmp_path / "m"
    cold = run_fetch(server, model.uri, dest)
    assert cold.rc == 0, cold.out
    marker = marker_path(dest).stat().st_mtime_ns

    if store == "hung":
        endpoint = hung.endpoint
    elif store == "refused":
        endpoint = f"http://127.0.0.1:{free_port()}"
    else:
        server.stop()
        endpoint = server.endpoint
    result, wall, got = timed_fetch(
        server, model, dest, endpoint, "--remote-check-timeout", str(CHECK_S)
    )
    warnings = [line for line in result.out.splitlines() if "warning: the store could not" in line]
    assert len(warnings) == 1, result.out
    assert "starting on the cache as it is" in warnings[0]
    assert (got.action, got.remote, got.downloaded_bytes) == ("warm", "unreachable", 0)
    assert got.seconds <= CHECK_S + 1.0, got
    assert wall < CHECK_S * WALL_FACTOR, f"{wall:.1f} s"
    assert marker_path(dest).stat().st_mtime_ns == marker, "the cache is used as it is"
    if store == "hung":
        assert hung.accepted >= 1, "the check did try the store"


def test_the_default_check_timeout_bounds_a_hung_store(
    gw: VersityGW, hung: HungListener, tmp_path: Path
) -> None:
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    assert run_fetch(gw, model.uri, dest).rc == 0
    _, wall, got = timed_fetch(gw, model, dest, hung.endpoint)
    assert got.remote == "unreachable"
    assert got.seconds <= DEFAULT_REMOTE_CHECK_TIMEOUT_S + 1.0, got
    assert wall < DEFAULT_REMOTE_CHECK_TIMEOUT_S * WALL_FACTOR, f"{wall:.1f} s"


def test_after_a_reboot_a_hung_store_bounds_the_re_verify(
    gw: VersityGW, hung: HungListener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache verified without fsync before a reboot is re-hashed against its own records when
    the store does not answer, after the same one bounded check."""
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    assert run_fetch(gw, model.uri, dest, env={BOOT_ID_ENV: "boot-a"}).rc == 0
    result, wall, got = timed_fetch(
        gw,
        model,
        dest,
        hung.endpoint,
        "--remote-check-timeout",
        str(CHECK_S),
        env={BOOT_ID_ENV: "boot-b"},
    )
    assert "re-verifying the cache" in result.out
    assert got.remote == "unreachable" and got.downloaded_bytes == 0
    assert wall < CHECK_S * WALL_FACTOR + 1.0, f"{wall:.1f} s"
    monkeypatch.setenv(BOOT_ID_ENV, "boot-b")
    assert verify_complete(dest).sha256 == model.sha256()


def test_a_store_that_answers_is_still_compared(gw: VersityGW, tmp_path: Path) -> None:
    """The bounded check is a real comparison: a replaced object is fetched again."""
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    assert run_fetch(gw, model.uri, dest).rc == 0
    gw.client().put_object(Bucket=model.bucket, Key=f"{model.prefix}/config.json", Body=b"{}")
    result, _, got = timed_fetch(gw, model, dest, gw.endpoint)
    assert "downloading 1 of 2 files" in result.out
    assert (got.action, got.remote) == ("downloaded", "compared")
    assert (dest / "config.json").read_bytes() == b"{}"


@pytest.mark.parametrize(
    "credentials",
    [
        {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": "rotated-secret"},
        {"AWS_ACCESS_KEY_ID": "AKIAREVOKED", "AWS_SECRET_ACCESS_KEY": "revoked-secret"},
    ],
    ids=["rotated-secret", "unknown-key"],
)
def test_wrong_credentials_with_a_verified_cache_are_treated_as_an_outage(
    credentials: dict[str, str], gw: VersityGW, tmp_path: Path
) -> None:
    """One rule for a denial and an outage: start on the verified cache, warn, report it."""
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    assert run_fetch(gw, model.uri, dest).rc == 0
    path = tmp_path / "report.json"
    start = time.monotonic()
    result = run_fetch(gw, model.uri, dest, "--report", str(path), credentials=credentials)
    wall = time.monotonic() - start
    assert result.rc == 0, result.out
    warning = next(line for line in result.out.splitlines() if "warning: the store" in line)
    assert "access denied" in warning and "until the Secret is fixed" in warning
    assert credentials["AWS_SECRET_ACCESS_KEY"] not in result.out
    got = read_report(path)
    assert (got.action, got.remote) == ("warm", "unreachable")
    assert wall < DEFAULT_REMOTE_CHECK_TIMEOUT_S * WALL_FACTOR
    # Without the cache the same credentials stop the step: nothing to fall back on.
    cold = run_fetch(gw, model.uri, tmp_path / "cold", credentials=credentials)
    assert cold.rc == ExitCode.CREDENTIALS, cold.out


def test_a_spec_that_pins_every_file_makes_no_store_call_on_a_warm_start(
    gw: VersityGW, hung: HungListener, tmp_path: Path
) -> None:
    """Pinned checksums that agree with the marker are the whole answer: the hung store sees no
    connection at all, wrong credentials do not matter, and the start does not wait for the
    check's bound. A manifest is not a pin (its content is in the store): with one, it is
    asked."""
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    pins = {"EMOTIVOICE_EXPECTED_SHA256": json.dumps(model.sha256())}
    assert run_fetch(gw, model.uri, dest, env=pins).rc == 0
    path = tmp_path / "report.json"
    bogus = {"AWS_ACCESS_KEY_ID": "AKIAREVOKED", "AWS_SECRET_ACCESS_KEY": "revoked-secret"}
    result = run_fetch(
        gw,
        model.uri,
        dest,
        "--report",
        str(path),
        env=pins,
        endpoint=hung.endpoint,
        credentials=bogus,
    )
    assert result.rc == 0, result.out
    assert hung.accepted == 0, "no request reached the store"
    assert "warning" not in result.out
    got = read_report(path)
    assert (got.action, got.remote) == ("warm", "not-needed")
    assert got.seconds < DEFAULT_REMOTE_CHECK_TIMEOUT_S / 5, got

    sums = model.sha256()
    manifest = "".join(f"{sums[rel]}  {rel}\n" for rel in sorted(sums)).encode()
    gw.client().put_object(Bucket=model.bucket, Key=f"{model.prefix}/SHA256SUMS", Body=manifest)
    listed = tmp_path / "listed"
    assert run_fetch(gw, model.uri, listed, "--manifest", "SHA256SUMS", env=pins).rc == 0
    asked = run_fetch(
        gw,
        model.uri,
        listed,
        "--manifest",
        "SHA256SUMS",
        "--report",
        str(path),
        "--remote-check-timeout",
        str(CHECK_S),
        env=pins,
        endpoint=hung.endpoint,
    )
    assert asked.rc == 0, asked.out
    assert hung.accepted >= 1
    assert read_report(path).remote == "unreachable"
