"""`emotivoice-server`: serve a model, or (`emotivoice-server prime`) pre-warm a running Service.

    emotivoice-server --model-dir /models/NAME --port 8080 --precision fp16
                      [--device auto|cpu|cuda] [--warmup-file PATH]
    emotivoice-server prime --url http://SERVICE:PORT [--timeout S]

Environment: EMOTIVOICE_WARMUP (JSON {"phrases", "voices", "prompts"}), EMOTIVOICE_MAX_QUEUE,
EMOTIVOICE_THREADS, EMOTIVOICE_QUEUE_TIMEOUT. Flags win over the environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from emotivoice_fetch.procstat import process_start_time
from emotivoice_server import settings as settings_module
from emotivoice_server.warmup import ENV_WARMUP, WarmupConfigError, WarmupSpec, parse_warmup

EXIT_USAGE = 2


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotivoice-server",
        description="Serve an EmotiVoice model (eager load, warm-up, then ready). "
        "Subcommand: 'emotivoice-server prime --url URL' pre-warms a running Service.",
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="the model directory")
    parser.add_argument("--port", type=int, default=settings_module.DEFAULT_PORT)
    parser.add_argument("--host", default=settings_module.DEFAULT_HOST, help="address to bind")
    parser.add_argument(
        "--precision",
        choices=settings_module.PRECISIONS,
        default=settings_module.DEFAULT_PRECISION,
    )
    parser.add_argument(
        "--load-format",
        choices=settings_module.LOAD_FORMATS,
        default="converted",
        help="converted: fast serving files (written at first start if missing); "
        "released: the released checkpoints at every start, nothing written",
    )
    parser.add_argument("--device", choices=settings_module.DEVICES, default="auto")
    parser.add_argument(
        "--warmup-file",
        type=Path,
        help=f"JSON warm-up plan (same shape as ${ENV_WARMUP}, which it overrides)",
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        help=f"requests waiting beyond the one on the model before 503 "
        f"(env {settings_module.ENV_MAX_QUEUE}, default {settings_module.DEFAULT_MAX_QUEUE})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help=f"HTTP threads (env {settings_module.ENV_THREADS}, default max-queue + "
        f"{1 + settings_module.SPARE_THREADS})",
    )
    parser.add_argument(
        "--queue-timeout",
        type=int,
        help=f"seconds a speech request may wait for the model before 503 "
        f"(env {settings_module.ENV_QUEUE_TIMEOUT}, default "
        f"{settings_module.DEFAULT_QUEUE_TIMEOUT_S})",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        help=f"PyTorch intra-op threads (env {settings_module.ENV_TORCH_THREADS}; default: "
        "the CPUs the container may use)",
    )
    parser.add_argument(
        "--no-require-marker",
        dest="require_marker",
        action="store_false",
        help="load a model directory that has no fetch completion marker (tests, local runs)",
    )
    parser.add_argument(
        "--embedding-cache-file",
        type=Path,
        help="where prompt embeddings are persisted (default: beside the model directory)",
    )
    parser.add_argument(
        "--no-persist-embeddings",
        dest="persist_embeddings",
        action="store_false",
        help="keep prompt embeddings in memory only",
    )
    return parser


def prime_parser() -> argparse.ArgumentParser:
    # Imported here, as in `_prime`: serving never needs the HTTP client.
    from emotivoice_server.prime import DEFAULT_TIMEOUT_S

    parser = argparse.ArgumentParser(
        prog="emotivoice-server prime",
        description=f"Wait until the Service is ready, then send the warm-up requests "
        f"(phrases from ${ENV_WARMUP}). Exit 0 on success.",
    )
    parser.add_argument("--url", required=True, help="base URL, e.g. http://my-tts:8080")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds to wait for /ready (default %(default)s)",
    )
    return parser


def _read_warmup(warmup_file: Path | None, env: Mapping[str, str]) -> WarmupSpec:
    if warmup_file is not None:
        try:
            text = warmup_file.read_text(encoding="utf-8")
        except OSError as err:
            raise WarmupConfigError(f"--warmup-file {warmup_file}: {err.strerror}") from err
        return parse_warmup(text, f"--warmup-file {warmup_file}")
    return parse_warmup(env.get(ENV_WARMUP), ENV_WARMUP)


def settings_from(
    argv: Sequence[str], env: Mapping[str, str], process_start: float = 0.0
) -> settings_module.ServerSettings:
    """The settings a server started with these arguments and this environment runs with (what
    the operator renders goes through here: tests/operator/test_server_contract.py). Raises
    `SettingsError` or `WarmupConfigError`; argparse exits on an unknown flag."""
    args = serve_parser().parse_args(argv)
    return settings_module.resolve(
        model_dir=args.model_dir.resolve(),
        env=env,
        warmup=_read_warmup(args.warmup_file, env),
        process_start=process_start,
        port=args.port,
        host=args.host,
        precision=args.precision,
        load_format=args.load_format,
        device=args.device,
        max_queue=args.max_queue,
        threads=args.threads,
        queue_timeout=args.queue_timeout,
        torch_threads=args.torch_threads,
        require_marker=args.require_marker,
        embedding_cache_file=args.embedding_cache_file,
        persist_embeddings=args.persist_embeddings,
    )


def _serve(argv: Sequence[str], env: Mapping[str, str]) -> int:
    started = process_start_time()
    try:
        settings = settings_from(argv, env, started)
    except (settings_module.SettingsError, WarmupConfigError) as err:
        print(f"emotivoice-server: {err}", file=sys.stderr)
        return EXIT_USAGE
    from emotivoice_server.serve import configure_logging, run

    configure_logging()
    return run(settings)


def _prime(argv: Sequence[str], env: Mapping[str, str]) -> int:
    args = prime_parser().parse_args(argv)
    from emotivoice_server.prime import prime_from_env

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(message)s")
    code, error = prime_from_env(args.url, env, args.timeout)
    if error is not None:
        print(f"emotivoice-server prime: {error}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    if argv and argv[0] == "prime":
        return _prime(argv[1:], env)
    return _serve(argv, env)


if __name__ == "__main__":
    sys.exit(main())
