"""A real Prometheus for the tests and benchmarks: a standalone process on 127.0.0.1, stopped by
its pid, with its history either scraped (the e2e suite) or backfilled from OpenMetrics text with
``promtool tsdb create-blocks-from openmetrics`` (the recommendation's tests).

Both binaries are built from the Prometheus Go module by hack/build-binaries.sh (cached).

Backfilling five weeks of minutes takes about a minute on this machine, so the blocks are cached
under ``EVS_CACHE_DIR`` keyed by the OpenMetrics text's sha256: a test that generates the same
history again (its generator is seeded) reuses them. Blocks are copied into each Prometheus's own
data directory, since Prometheus compacts and deletes blocks it owns.

Prometheus drops, at start, every block older than its retention: ``retention`` must cover the
history (the default here is 400 days, far more than any test's).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.operator_process import free_port

START_TIMEOUT_S = 60.0
DEFAULT_RETENTION = "400d"
CACHE_DIR = Path(os.environ.get("EVS_CACHE_DIR", Path.home() / ".cache/emotivoice-operator"))


def binaries() -> Path:
    """The directory holding ``prometheus`` and ``promtool`` (built on first use: minutes)."""
    from tests.support.cluster import build_binaries

    return build_binaries("prometheus", "promtool")


def promtool() -> Path:
    return binaries() / "promtool"


def backfill(openmetrics: str, into: Path) -> Path:
    """Blocks holding ``openmetrics`` (text ending in ``# EOF``), copied into ``into`` (a new
    data directory); returns ``into``. Cached by content, so a second call costs a copy."""
    if not openmetrics.rstrip().endswith("# EOF"):
        raise ValueError("OpenMetrics text must end with '# EOF'")
    digest = hashlib.sha256(openmetrics.encode()).hexdigest()[:16]
    cached = CACHE_DIR / "prometheus-blocks" / digest
    if not (cached / ".complete").exists():
        work = cached.with_name(f"{digest}.tmp{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        source = work / "history.om"
        source.write_text(openmetrics)
        # Two-hour blocks (the default) make thousands of blocks for weeks of history; a day
        # per block is what a long-running Prometheus would have after compaction anyway.
        result = subprocess.run(
            [
                str(promtool()),
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--max-block-duration=24h",
                str(source),
                str(work / "data"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            shutil.rmtree(work, ignore_errors=True)
            raise RuntimeError(f"promtool backfill failed:\n{result.stderr[-2000:]}")
        source.unlink()
        (work / ".complete").touch()
        shutil.rmtree(cached, ignore_errors=True)
        work.rename(cached)
    into.mkdir(parents=True, exist_ok=True)
    for block in (cached / "data").iterdir():
        shutil.copytree(block, into / block.name)
    return into


@dataclass
class Prometheus:
    """One Prometheus process: ``config`` is its YAML (``""`` for none: it then only serves the
    data directory's blocks), ``data`` its storage directory."""

    data: Path
    log_path: Path
    config: str = ""
    retention: str = DEFAULT_RETENTION
    extra_args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        self.data.mkdir(parents=True, exist_ok=True)
        config_path = self.data.parent / f"prometheus-{self.port}.yml"
        config_path.write_text(self.config or "global: {}\n")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(binaries() / "prometheus"),
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={self.data}",
                    f"--storage.tsdb.retention.time={self.retention}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            self.wait_ready(START_TIMEOUT_S)
        except TimeoutError:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise TimeoutError(
                    f"prometheus exited ({self.proc.returncode}); see {self.log_path}"
                )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready after {timeout_s} s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None

    def reload(self, config: str) -> None:
        """A new configuration, applied without a restart (``/-/reload``)."""
        self.config = config
        (self.data.parent / f"prometheus-{self.port}.yml").write_text(config)
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/PATH?params``'s ``data``; ``RuntimeError`` with Prometheus's own error."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result vector (or scalar, as returned)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self.api("query", **params)["result"]

    def targets(self) -> list[dict[str, Any]]:
        return self.api("targets")["activeTargets"]
