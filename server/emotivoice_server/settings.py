"""The server's settings: one typed object, built from parsed flags plus the environment.

Every default lives here once. Resolution is pure (the environment is passed in as a mapping),
so the precedence rules are unit-tested without touching `os.environ`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from emotivoice_server.warmup import WarmupSpec
from emotivoice_tts.layout import LOAD_FORMATS

DEFAULT_PORT = 8080
DEFAULT_HOST = "0.0.0.0"
DEFAULT_PRECISION = "fp32"
PRECISIONS = ("fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")
# Requests admitted at once = 1 on the model + DEFAULT_MAX_QUEUE waiting; the next one gets 503.
DEFAULT_MAX_QUEUE = 8
# HTTP threads beyond the admitted requests, so /health, /ready, /metrics and the fast 503s
# are answered while the queue is full.
SPARE_THREADS = 4
# The longest a speech request waits for the model before it is refused with 503 (a client
# that sends x-stainless-read-timeout, as the `openai` client does, may shorten it): queued work
# nobody will wait for must not reach the model.
DEFAULT_QUEUE_TIMEOUT_S = 60
DEFAULT_PROMPT_CACHE_SIZE = 256
DEFAULT_CONTENT_CACHE_SIZE = 1024
# OpenAI's own limit for /v1/audio/speech `input`.
MAX_INPUT_CHARS = 4096
# A prompt goes through BERT in one piece (512 tokens at most, [CLS] and [SEP] included).
MAX_PROMPT_CHARS = 500
# The largest JSON body accepted (4096 characters of 4-byte UTF-8 plus fields, with room).
MAX_BODY_BYTES = 64 * 1024
# After SIGTERM: how long in-flight requests (streams included) have to finish before the worker
# is stopped. Its one home: the operator sizes the pod's terminationGracePeriodSeconds from it
# (emotivoice_operator.render.deployment imports it; this module imports nothing heavy, and the
# operator's image carries this package without torch).
GRACEFUL_TIMEOUT_S = 20

ENV_MAX_QUEUE = "EMOTIVOICE_MAX_QUEUE"
ENV_THREADS = "EMOTIVOICE_THREADS"
ENV_TORCH_THREADS = "EMOTIVOICE_TORCH_THREADS"
ENV_QUEUE_TIMEOUT = "EMOTIVOICE_QUEUE_TIMEOUT"
# The pool this server belongs to (the operator sets it from the pod's instance label), sent
# back on every answer as POOL_HEADER: a client behind a Service that moves between a pool and
# its fallback sees which one answered.
ENV_POOL = "EMOTIVOICE_POOL"
POOL_HEADER = "X-EmotiVoice-Pool"


class SettingsError(ValueError):
    """A setting is invalid; the message names the flag or variable and the fix."""


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server process needs; built once by the CLI, passed down explicitly."""

    model_dir: Path
    port: int = DEFAULT_PORT
    host: str = DEFAULT_HOST
    precision: str = DEFAULT_PRECISION
    # "converted": fast serving files (written at first start if the fetch step did not);
    # "released": the released checkpoints at every start.
    load_format: str = "converted"
    device: str = "auto"
    warmup: WarmupSpec = field(default_factory=WarmupSpec)
    max_queue: int = DEFAULT_MAX_QUEUE
    threads: int = DEFAULT_MAX_QUEUE + 1 + SPARE_THREADS
    queue_timeout_s: int = DEFAULT_QUEUE_TIMEOUT_S
    # PyTorch intra-op threads on the model thread; 0: the container's CPU budget (cpus.py).
    torch_threads: int = 0
    require_marker: bool = True
    prompt_cache_size: int = DEFAULT_PROMPT_CACHE_SIZE
    content_cache_size: int = DEFAULT_CONTENT_CACHE_SIZE
    # Where prompt embeddings are persisted; None disables persistence.
    embedding_cache_file: Path | None = None
    # Epoch seconds when the server process started (the clock for "process start -> ready").
    process_start: float = 0.0
    # The files the completion marker lists, set once the marker was verified: the only files
    # the model is loaded from (None: not checked, `--no-require-marker`).
    verified_files: frozenset[str] | None = None
    # The pool named in every answer's POOL_HEADER; empty: no header.
    pool: str = ""

    @property
    def model_name(self) -> str:
        """The id reported by /v1/models: the model directory's name on the volume."""
        return self.model_dir.name or "emotivoice"

    @property
    def torch_device(self) -> str | None:
        """The device argument for the model package: None lets it choose (CUDA if present)."""
        return None if self.device == "auto" else self.device


def default_embedding_cache_file(model_dir: Path) -> Path:
    """Beside the model directory, not inside it: the fetch step owns and verifies the inside."""
    return model_dir.parent / ".emotivoice-cache" / f"{model_dir.name}.prompt-embeddings.pt"


def _positive_int(raw: str | int, name: str, minimum: int) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError) as err:
        raise SettingsError(f"{name}: expected an integer, got {raw!r}") from err
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _flag_or_env(
    flag_value: int | None,
    flag: str,
    env: Mapping[str, str],
    variable: str,
    minimum: int,
    default: int,
) -> int:
    """The flag when given (it wins), else the environment variable when set, else the default;
    a bad value names where it came from."""
    if flag_value is not None:
        return _positive_int(flag_value, flag, minimum)
    raw = env.get(variable, "").strip()
    return _positive_int(raw, variable, minimum) if raw else default


def resolve(
    *,
    model_dir: Path,
    env: Mapping[str, str],
    warmup: WarmupSpec,
    process_start: float,
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    precision: str = DEFAULT_PRECISION,
    load_format: str = "converted",
    device: str = "auto",
    max_queue: int | None = None,
    threads: int | None = None,
    torch_threads: int | None = None,
    require_marker: bool = True,
    embedding_cache_file: Path | None = None,
    persist_embeddings: bool = True,
    queue_timeout: int | None = None,
) -> ServerSettings:
    """Combine flags (which win) with EMOTIVOICE_MAX_QUEUE / EMOTIVOICE_THREADS and defaults."""
    if precision not in PRECISIONS:
        raise SettingsError(f"--precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if load_format not in LOAD_FORMATS:
        raise SettingsError(
            f"--load-format: {load_format!r} is not one of {', '.join(LOAD_FORMATS)}"
        )
    if device not in DEVICES:
        raise SettingsError(f"--device: {device!r} is not one of {', '.join(DEVICES)}")
    if not 0 <= port <= 65535:
        raise SettingsError(f"--port: {port} is not a TCP port (0-65535)")
    max_queue = _flag_or_env(max_queue, "--max-queue", env, ENV_MAX_QUEUE, 0, DEFAULT_MAX_QUEUE)
    threads = _flag_or_env(threads, "--threads", env, ENV_THREADS, 1, max_queue + 1 + SPARE_THREADS)
    torch_threads = _flag_or_env(torch_threads, "--torch-threads", env, ENV_TORCH_THREADS, 0, 0)
    queue_timeout_s = _flag_or_env(
        queue_timeout, "--queue-timeout", env, ENV_QUEUE_TIMEOUT, 1, DEFAULT_QUEUE_TIMEOUT_S
    )
    cache_file = None
    if persist_embeddings:
        cache_file = embedding_cache_file or default_embedding_cache_file(model_dir)
    return ServerSettings(
        model_dir=model_dir,
        port=port,
        host=host,
        precision=precision,
        load_format=load_format,
        device=device,
        warmup=warmup,
        max_queue=max_queue,
        threads=threads,
        queue_timeout_s=queue_timeout_s,
        torch_threads=torch_threads,
        require_marker=require_marker,
        embedding_cache_file=cache_file,
        process_start=process_start,
        pool=env.get(ENV_POOL, "").strip(),
    )
