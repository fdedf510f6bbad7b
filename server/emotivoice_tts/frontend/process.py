"""The text frontend in a child process, so that building it overlaps the import of torch.

Building the frontend (jieba's prefix dictionary, pypinyin's phrase tables, the lexicon) is a
second and a half of pure Python; importing torch is another second and a half. In one process
both hold the GIL and take turns; in a child process the dictionaries are built on another core
while the server imports torch, and a start-up is that much shorter. Per call the child costs a
pipe round trip (a fraction of a millisecond against a synthesis of about a second).

Protocol: one JSON object per line. The child first writes `{"ready": true}` (or
`{"error": ...}` and exits); then, for each `{"text": ..., "english_numbers": ...}`, it answers
`{"tokens": [...]}` or `{"error": ...}`. A child that died is started again on the next call.

    python -m emotivoice_tts.frontend.process LEXICON   # what FrontendProcess runs
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from ..errors import ModelLoadError


class FrontendError(ValueError):
    """The frontend refused a text (its message says why)."""


class FrontendProcess:
    """Callable like `MixedG2P`; the dictionaries live in a child process."""

    def __init__(self, lexicon: Path) -> None:
        self.lexicon = lexicon
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._ready = False
        self._start()

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(self.lexicon)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._ready = False

    def _read(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.poll()
            raise ModelLoadError(f"the text frontend process exited (code {code})")
        return json.loads(line)

    def wait_ready(self) -> None:
        """Blocks until the child has built its dictionaries; its failure is raised here."""
        with self._lock:
            self._wait_ready()

    def _wait_ready(self) -> None:
        if self._ready:
            return
        message = self._read()
        if "error" in message:
            raise ModelLoadError(f"text frontend: {message['error']}")
        self._ready = True

    def __call__(self, text: str, *, english_numbers: bool = False) -> list[str]:
        request = json.dumps({"text": text, "english_numbers": english_numbers}) + "\n"
        with self._lock:
            for attempt in (1, 2):
                try:
                    self._wait_ready()
                    assert self._proc is not None and self._proc.stdin is not None
                    self._proc.stdin.write(request)
                    self._proc.stdin.flush()
                    answer = self._read()
                    break
                except (OSError, ModelLoadError):
                    if attempt == 2:
                        raise
                    self.close()
                    self._start()  # a crashed child: start a new one and ask it once more
        if "error" in answer:
            raise FrontendError(answer["error"])
        return list(answer["tokens"])

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a dead child's pipe
                    stream.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve(lexicon: Path, inp: IO[str], out: IO[str]) -> int:
    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")  # ASCII-escaped: no locale encoding issues
        out.flush()

    try:
        from . import build_frontend

        frontend = build_frontend(lexicon)
    except Exception as err:  # reported to the parent, which names it in /ready
        send({"error": f"{type(err).__name__}: {err}"})
        return 1
    send({"ready": True})
    for line in inp:
        request = json.loads(line)
        try:
            tokens = frontend(request["text"], english_numbers=bool(request["english_numbers"]))
        except Exception as err:  # one bad text must not end the process
            send({"error": f"{type(err).__name__}: {err}"})
            continue
        send({"tokens": tokens})
    return 0  # the parent closed the pipe


if __name__ == "__main__":
    sys.exit(_serve(Path(sys.argv[1]), sys.stdin, sys.stdout))
