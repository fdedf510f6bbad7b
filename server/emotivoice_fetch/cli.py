"""`emotivoice-fetch`: the init container's command line.

This module only builds the argument parser and wires things up; `fetch.run` does the work. A
failure ends with one line on stderr, `emotivoice-fetch: error: ...`, and the exit code of
`errors.ExitCode`.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from emotivoice_fetch import config as cfg
from emotivoice_fetch import report
from emotivoice_fetch.durability import DEFAULT_DURABILITY, Durability
from emotivoice_fetch.errors import PROG, ExitCode, FetchError
from emotivoice_fetch.procstat import process_start_time

if TYPE_CHECKING:
    from emotivoice_fetch.fetch import Outcome

# Importing boto3 and building its client allocates ~88,000 objects that live for the whole run;
# at the default threshold (700) the collector walks them some 130 times on the way, about 40 ms
# of every cold start (measured). Above that count it runs rarely; it still runs.
GC_GEN0_THRESHOLD = 100_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Download a model from S3/MinIO into the model cache volume, verify it and mark "
            "it complete; a second start on a complete cache returns at once. Credentials come "
            f"only from {cfg.ACCESS_KEY_ENV}/{cfg.SECRET_KEY_ENV}/{cfg.SESSION_TOKEN_ENV}, "
            f"expected checksums from {cfg.EXPECTED_SHA256_ENV} (JSON) and/or --manifest."
        ),
    )
    parser.add_argument("--source", required=True, help="s3://BUCKET/PREFIX of the model")
    parser.add_argument("--dest", required=True, type=Path, help="model directory on the volume")
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint (MinIO...); default AWS")
    parser.add_argument("--region", default=cfg.DEFAULT_REGION, help="default %(default)s")
    parser.add_argument(
        "--path-style", action="store_true", help="path-style addressing (most MinIO setups)"
    )
    parser.add_argument(
        "--manifest",
        metavar="KEY",
        help="checksum manifest object relative to PREFIX, sha256sum format '<hex>  <relpath>'; "
        "when given, only the files it lists are fetched",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=cfg.DEFAULT_CONCURRENCY,
        help="parallel connections, across files and parts of a file (default %(default)s)",
    )
    parser.add_argument(
        "--part-size-mb",
        type=_positive_int,
        default=cfg.DEFAULT_PART_SIZE_MB,
        help="smallest byte range split off a slow stream for another connection, MiB "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--lock-timeout",
        type=_positive_float,
        default=cfg.DEFAULT_LOCK_TIMEOUT_S,
        metavar="SECONDS",
        help="a download lock without a heartbeat for this long belongs to a crashed pod and "
        "is taken over (default %(default)s)",
    )
    parser.add_argument(
        "--remote-check-timeout",
        type=_positive_float,
        default=cfg.DEFAULT_REMOTE_CHECK_TIMEOUT_S,
        metavar="SECONDS",
        help="with a verified cache to start on, ask the store at most this long in all whether "
        "the cache is still the model; without an answer (store down, hung or refusing), start "
        "on the cache with a warning (default %(default)s)",
    )
    parser.add_argument(
        "--after-verify",
        metavar="MODULE:FUNCTION",
        help="post-processing called with (dest, {relpath: sha256}) before the model is marked "
        "complete; what it writes is recorded in the marker",
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines, 0 for none (default %(default)s)",
    )
    parser.add_argument(
        "--durability",
        choices=[d.value for d in Durability],
        default=DEFAULT_DURABILITY.value,
        help="'boot' (default): write no fsync, so the pod does not wait for the model to be "
        "written back to a slow disk; the completion marker records the kernel boot id, and "
        "after a node reboot the next run re-hashes every file before the model is trusted "
        "again (the server refuses it until then). 'fsync': fsync every file before marking "
        "the model complete, so it is trusted across reboots without re-hashing",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help="write a one-line JSON report of this start (cache hit or download, seconds per "
        f"phase) to PATH; in a pod, {report.TERMINATION_LOG}, so the kubelet hands it to the "
        "operator as the container's termination message",
    )
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def config_from(args: argparse.Namespace, environ: Mapping[str, str]) -> cfg.FetchConfig:
    bucket, prefix = cfg.parse_source_uri(args.source)
    manifest = args.manifest.strip("/") if args.manifest else None
    return cfg.FetchConfig(
        source=cfg.Source(bucket, prefix, args.endpoint_url, args.region, args.path_style),
        dest=args.dest,
        credentials=cfg.credentials_from_env(environ),
        manifest_key=manifest,
        expected_sha256=cfg.parse_expected_sha256(environ.get(cfg.EXPECTED_SHA256_ENV)),
        concurrency=args.concurrency,
        part_size=args.part_size_mb * 1024 * 1024,
        lock_timeout_s=args.lock_timeout,
        after_verify=args.after_verify,
        progress_interval_s=args.progress_interval,
        durability=Durability(args.durability),
        remote_check_timeout_s=args.remote_check_timeout,
    )


def log(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from(args, os.environ)
        from emotivoice_fetch import fetch  # after parsing: --help stays instant

        outcome = fetch.run(config, log)
    except FetchError as exc:
        log(f"error: {exc.message}")
        return int(exc.code)
    except KeyboardInterrupt:
        log("error: interrupted; a restart resumes the download")
        return int(ExitCode.INTERRUPTED)
    model = outcome.model
    size = sum(rec.size for rec in model.files.values())
    unpinned = unpinned_files(config, model.files)
    if unpinned:
        log(
            f"warning: {len(unpinned)} of {len(model.files)} files (e.g. {unpinned[0]}) have no "
            "expected sha256 (no --manifest and none in EMOTIVOICE_EXPECTED_SHA256): they were "
            "checked against the store's listing only (size and ETag), nothing pins their "
            "content; set model.source.checksumManifest or checksums"
        )
    if outcome.action == "downloaded":
        rate = outcome.downloaded_bytes / outcome.seconds / 1e6 if outcome.seconds else 0.0
        log(
            f"downloaded {outcome.downloaded_bytes / 1e6:.1f} MB in {outcome.seconds:.1f} s "
            f"({rate:.1f} MB/s); {len(model.files)} files, {size / 1e6:.1f} MB "
            f"{_verified_how(unpinned, model.files)} in {config.dest}"
            + (f" ({len(outcome.rehashed)} re-hashed from disk)" if outcome.rehashed else "")
            + ("" if model.synced else f"; not fsynced, trusted during boot {model.boot_id}")
        )
    else:
        verb = "cache complete" if outcome.action == "warm" else "completed by another pod"
        log(
            f"{verb}: {len(model.files)} files, {size / 1e6:.1f} MB "
            f"{_verified_how(unpinned, model.files)} in {config.dest} "
            f"({outcome.seconds * 1000:.0f} ms)"
        )
    if args.report:
        report.write(
            args.report, summary(outcome, started_at=process_start_time(), ended_at=time.time())
        )
    return int(ExitCode.OK)


def summary(
    outcome: Outcome, *, started_at: float | None = None, ended_at: float | None = None
) -> report.FetchReport:
    """The report of ``outcome``; ``started_at``/``ended_at``: the process's wall-clock start
    and end (epoch seconds), the operator's sub-second bounds of the fetch phase."""
    files = outcome.model.files
    return report.FetchReport(
        action=outcome.action,
        files=len(files),
        bytes=sum(rec.size for rec in files.values()),
        downloaded_bytes=outcome.downloaded_bytes,
        seconds=outcome.seconds,
        phases=dict(outcome.phases),
        remote=outcome.remote,
        started_at=started_at,
        ended_at=ended_at,
    )


def unpinned_files(config: cfg.FetchConfig, files: Collection[str]) -> list[str]:
    """Files no expected sha256 pins (pure): with a manifest, none (it lists every file)."""
    if config.manifest_key:
        return []
    return sorted(set(files) - set(config.expected_sha256))


def _verified_how(unpinned: list[str], files: Collection[str]) -> str:
    if not unpinned:
        return "verified (sha256)"
    if len(unpinned) == len(files):
        return "checked by size only (no sha256 pinned)"
    return f"verified (sha256; {len(unpinned)} of them by size only)"


def entry() -> NoReturn:
    """The console script: `main` with the process's GC tuned for a short run, then an exit
    without tearing the interpreter down (process-wide settings, so not in `main`).

    When `main` returns, every file is closed, the lock released and every thread finished; what
    is left is freeing boto3's objects one by one, ~40 ms of each init container's run
    (measured), so both streams are flushed and the process ends with os._exit."""
    gc.set_threshold(GC_GEN0_THRESHOLD)
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
