"""A real S3 server on loopback for the fetch tests and the benchmark: versitygw over a directory.

versitygw is built from its Go module by hack/build-binaries.sh (cached). It serves S3 (SigV4,
ranged GETs, multipart uploads, conditional GETs) over a POSIX directory, so the fetch step is
tested against the protocol it meets in production, not an emulator. The server listens on
127.0.0.1 only, and can be killed and restarted on the same port and data to model an outage.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_KEY = "AKIAEMOTIVOICETEST"
SECRET_KEY = "emotivoice-test-secret-key"
REGION = "us-east-1"
START_TIMEOUT_S = 20.0


def versitygw_binary() -> Path:
    """The versitygw binary, built on first use (seconds when cached)."""
    from tests.support.cluster import build_binaries

    return build_binaries("versitygw") / "versitygw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


@dataclass
class VersityGW:
    """One versitygw process serving `root` (each subdirectory is a bucket)."""

    binary: Path
    root: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for a fetch process with the right credentials."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    def start(self) -> VersityGW:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.binary),
                    "--port",
                    f"127.0.0.1:{self.port}",
                    "--access",
                    ACCESS_KEY,
                    "--secret",
                    SECRET_KEY,
                    "--region",
                    REGION,
                    "--quiet",
                    "posix",
                    str(self.root),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_for_port(self.port, START_TIMEOUT_S)
        except TimeoutError:
            self.stop()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL, as a crashed or evicted store pod."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None

    def client(self) -> Any:
        """A boto3 client for setting up buckets and objects."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}),
        )


def put_model(client: Any, bucket: str, prefix: str, files: dict[str, bytes | Path]) -> None:
    """Upload a model; Paths go through boto3's multipart upload (large files)."""
    from boto3.s3.transfer import TransferConfig

    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)
    transfer = TransferConfig(multipart_threshold=16 * 1024 * 1024, max_concurrency=4)
    for relpath, content in files.items():
        key = f"{prefix}/{relpath}" if prefix else relpath
        if isinstance(content, Path):
            client.upload_file(str(content), bucket, key, Config=transfer)
        else:
            client.put_object(Bucket=bucket, Key=key, Body=content)


def random_file(path: Path, size: int, seed: int) -> Path:
    """Write `size` pseudo-random bytes fast (a repeated random block, shifted per block)."""
    import random

    block = random.Random(seed).randbytes(1024 * 1024)
    with open(path, "wb") as f:
        written = 0
        counter = 0
        while written < size:
            chunk = counter.to_bytes(8, "little") + block[8:]
            chunk = chunk[: size - written]
            f.write(chunk)
            written += len(chunk)
            counter += 1
    return path
