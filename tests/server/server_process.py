"""Start the real `emotivoice-server` as a process on 127.0.0.1 and stop it again.

Used by the server tests and by bench/server_bench.py, so both measure the same thing: the
console script the image runs, a real port, real HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
SMALL_MODEL = REPO / ".models" / "small"
FULL_MODEL = REPO / ".models" / "full"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command() -> list[str]:
    script = Path(sys.executable).parent / "emotivoice-server"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "emotivoice_server.cli"]


@dataclass
class Sample:
    """One poll during start-up: seconds since launch, /health and /ready status, phase."""

    t: float
    health: int
    ready: int
    phase: str | None


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    port: int
    log_path: Path
    launched: float  # time.perf_counter() just before the process was spawned
    trace: list[Sample] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _status(self, path: str) -> tuple[int, dict | None]:
        try:
            response = requests.get(self.url + path, timeout=2)
        except requests.RequestException:
            return 0, None
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    def wait_ready(self, timeout: float, poll: float = 0.01) -> dict:
        """Poll /health and /ready until ready (records `trace`); raise with the log if not."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            health, _ = self._status("/health")
            ready, body = self._status("/ready")
            phase = body.get("phase") if body else None
            self.trace.append(Sample(time.perf_counter() - self.launched, health, ready, phase))
            if ready == 200 and body is not None:
                return body
            if phase == "failed":
                return body or {}
            time.sleep(poll)
        raise TimeoutError(f"server not ready within {timeout} s:\n{self.log()[-4000:]}")

    def wait_phase(self, phase: str, timeout: float) -> dict:
        """Poll /ready until it reports `phase` (e.g. 'failed'); returns the body."""
        deadline = time.perf_counter() + timeout
        body: dict | None = None
        while time.perf_counter() < deadline:
            _, body = self._status("/ready")
            if body and body.get("phase") == phase:
                return body
            time.sleep(0.05)
        raise TimeoutError(f"phase {phase!r} not reached; last {body}:\n{self.log()[-4000:]}")

    def metrics(self) -> dict[str, float]:
        """The /metrics text as {'name{labels}': value} (comments dropped)."""
        text = requests.get(self.url + "/metrics", timeout=5).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def worker_pid(self) -> int:
        """The gunicorn worker (the master's only child), where the model lives."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        pids = [int(p) for p in children.split()]
        if len(pids) != 1:
            raise RuntimeError(f"expected one worker, found {pids}")
        return pids[0]

    def worker_rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.worker_pid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def worker_cpu_seconds(self) -> float:
        """User + system CPU time of the worker so far (10 ms resolution).

        On a shared machine wall-clock latency swings with other load; CPU time mostly does not,
        so benchmarks report both.
        """
        stat = Path(f"/proc/{self.worker_pid()}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (graceful: the worker finishes and saves its caches), then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def start_server(
    model_dir: Path,
    log_path: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    warmup: dict | None = None,
    port: int | None = None,
    command: Sequence[str] | None = None,
) -> ServerProcess:
    """Launch on 127.0.0.1 (own process group, so a hung worker is killed with its master)."""
    port = port or free_port()
    full_env = {**os.environ, **(env or {})}
    if warmup is not None:
        full_env["EMOTIVOICE_WARMUP"] = json.dumps(warmup)
    args = [
        *(command or server_command()),
        "--model-dir",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("wb")
    launched = time.perf_counter()
    proc = subprocess.Popen(
        args,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=full_env,
        cwd=REPO,
        start_new_session=True,
    )
    log_file.close()
    return ServerProcess(proc=proc, port=port, log_path=log_path, launched=launched)
