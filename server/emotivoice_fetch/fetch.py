"""One fetch run: decide whether the cache is already good, else lock, download, verify, commit.

Whether the cache is good, in this order: the marker (`verify_complete`: identity of every file,
no network); then the spec's pinned checksums against the marker, always first (plan.py's
`pin_conflicts`): if they pin every file and agree, nothing else (no object-store call at all).
Else the store is asked. With a cache of the same source to start on, that is one bounded check
(remote.py); a store that does not answer in time leaves the cache used as it is, with a
warning. Without one, the listing retries with backoff. A pin that contradicts the marker means
the cache is not the model the spec asks for, so it is never used as it is: with the store up,
the pinned version is fetched (and must match, else CHECKSUM_MISMATCH); with the store
unanswering, the step stops with CHECKSUM_MISMATCH naming the file and both digests.

Wrong credentials (a rotated key, an expired token) are treated as an outage: with a verified
cache of the same source the pod starts on it, with a warning that names the denial; without
one the step stops with CREDENTIALS (exit 3). Why one rule: either way the store cannot say
whether the cache is still the model, and the cache is exactly as verified as it was; refusing
it would turn a secret rotation into pods that never start again at the moment a warm window
scales up, while the same pods survive a store outage. The warning (and the report's "remote":
"unreachable") is how the rotation is noticed; a start without the cache still fails loudly.

Order of events on a cold start, chosen so that a crash at any point leaves nothing that
`verify_complete` would accept and nothing that a restart cannot reuse:

1. the old marker (if any) is moved into the staging area: from here on the directory is not
   a complete model; the old records still let unchanged files skip re-hashing;
2. each file is downloaded into `.emotivoice-partial/`, hashed, compared with its expected
   sha256, fsynced (`--durability fsync` only) and then renamed to its final path (a record
   goes to a journal);
3. the `--after-verify` hook runs; its outputs are recorded;
4. files of the previous model version that are no longer part of it are removed;
5. if the marker will say "synced": files and directories are fsynced; the marker is written
   atomically (with the boot id), the staging area is removed.

With `--durability boot` (the default, see durability.py) nothing is fsynced on a cold start
and every record (marker, journals) carries the boot id. Records written without fsync during
another boot are not trusted on identity: their files are re-hashed from disk against the
recorded sha256 and re-fetched if they differ. A run that downloads nothing (such a re-verify
after a reboot) fsyncs every file and writes a synced marker: the fsyncs are nearly free, since
the bytes were just read back from the disk, and from then on the model survives reboots. If the
store is unreachable, such a re-verify still runs against the marker's own records. A model
verified without fsync during this boot that is then asked for with `--durability fsync` (the
spec changed) is synced in place and its marker rewritten as synced, without re-reading it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from emotivoice_fetch import confined, report
from emotivoice_fetch.config import EXPECTED_SHA256_ENV, FetchConfig, Source
from emotivoice_fetch.download import Downloader, FileJob, discard
from emotivoice_fetch.durability import (
    Durability,
    current_boot_id,
    fsync_dir,
    fsync_file,
    needs_sync,
    trusted_now,
)
from emotivoice_fetch.errors import ExitCode, FetchError, from_os_error
from emotivoice_fetch.hook import Hook, check_hook, hook_space, load_hook, run_hook, sha256_file
from emotivoice_fetch.lock import LeaseLock
from emotivoice_fetch.marker import (
    CompleteModel,
    FileRecord,
    IncompleteModel,
    UnsyncedFromOtherBoot,
    read_marker,
    record_for,
    verify_complete,
    write_marker,
)
from emotivoice_fetch.paths import marker_path, staging_dir
from emotivoice_fetch.plan import (
    PinConflict,
    RemoteObject,
    Request,
    describe_conflicts,
    matches,
    pin_conflicts,
    request_from_model,
)
from emotivoice_fetch.progress import MB, Progress
from emotivoice_fetch.remote import Log, StoreFactory, bounded_check, describe_request
from emotivoice_fetch.retry import RetryPolicy
from emotivoice_fetch.store import ObjectStore

LOCK_POLL_S = 0.25
WAIT_LOG_S = 10.0


@dataclass
class Outcome:
    """What a run did, for the summary line, the report and tests."""

    model: CompleteModel
    action: str  # "warm", "waited", "downloaded"
    downloaded_bytes: int = 0
    seconds: float = 0.0
    rehashed: list[str] = field(default_factory=list)
    # Wall seconds per phase ("list", "download", "verify", "convert"...), for the report.
    phases: dict[str, float] = field(default_factory=dict)
    # How the cache was compared with the store (report.REMOTES).
    remote: str = report.REMOTE_COMPARED


def default_store(config: FetchConfig) -> ObjectStore:
    from emotivoice_fetch.store import S3Store

    return S3Store(config.source, config.credentials, max_connections=config.concurrency + 2)


def _verified(dest: Path) -> CompleteModel | None:
    try:
        return verify_complete(dest)
    except IncompleteModel:
        return None


def _inspect(dest: Path) -> tuple[CompleteModel | None, CompleteModel | None]:
    """(the verified model, None), or (None, the marker's model) if it was refused only for
    being unsynced from another boot, or (None, None): one read of the marker for both."""
    try:
        return verify_complete(dest), None
    except UnsyncedFromOtherBoot as exc:
        return None, exc.model
    except IncompleteModel:
        return None, None


def run(
    config: FetchConfig,
    log: Log,
    store_factory: StoreFactory = default_store,
    retry: RetryPolicy | None = None,
) -> Outcome:
    """Make `config.dest` hold the complete verified model, as durable as asked; return what it
    took."""
    started = time.monotonic()
    outcome = _synced_if_asked(
        _run(config, log, store_factory, retry or RetryPolicy()), config, log
    )
    outcome.seconds = time.monotonic() - started
    return outcome


@contextlib.contextmanager
def _phase(phases: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall time of the block to `phases[name]` (for the report)."""
    start = time.monotonic()
    try:
        yield
    finally:
        phases[name] = phases.get(name, 0.0) + time.monotonic() - start


def _run(config: FetchConfig, log: Log, store_factory: StoreFactory, retry: RetryPolicy) -> Outcome:
    outcome = _decide(config, log, store_factory, retry, phases := {})
    outcome.phases = phases
    return outcome


def _decide(
    config: FetchConfig,
    log: Log,
    store_factory: StoreFactory,
    retry: RetryPolicy,
    phases: dict[str, float],
) -> Outcome:
    dest = config.dest
    try:
        confined.check_root(dest)
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise from_os_error(exc, f"creating {dest}") from None
    if config.after_verify:
        # Only checked here: importing it (torch, for the converter) costs a second, and a warm
        # start never runs it (the marker records which hook made its artifacts).
        check_hook(config.after_verify)

    with _phase(phases, "verify"):
        cached, stale = _inspect(dest)
    if cached is not None and matches(cached, config, None):
        return Outcome(cached, "warm", remote=report.REMOTE_NOT_NEEDED)

    # A cache of this very source to start on, should the store not answer.
    fallback = next((m for m in (cached, stale) if m is not None and _same_source(m, config)), None)
    conflicts = pin_conflicts(fallback.sha256, config.expected_sha256) if fallback else []
    if conflicts:
        log(
            f"the spec's checksums contradict the verified cache in {dest} "
            f"({describe_conflicts(conflicts)}): fetching the pinned version from the store"
        )
    store: ObjectStore | None = None
    remote = report.REMOTE_COMPARED
    if fallback is None:
        with _phase(phases, "list"):
            store = store_factory(config)
            request = describe_request(store, config, retry, log)
    else:
        if stale is not None:
            log(f"{dest} was verified without fsync before a reboot: re-hashing every file")
        with _phase(phases, "list"):
            check = bounded_check(config, store_factory, log)
        if check.failure is not None:
            started = _without_the_store(cached, fallback, conflicts, check.failure, config, log)
            if isinstance(started, Outcome):
                return started
            request, remote = started, report.REMOTE_UNREACHABLE
        else:
            assert check.request is not None
            request, store = check.request, check.store
            if cached is not None and matches(cached, config, request):
                return Outcome(cached, "warm")

    lock = LeaseLock(dest, config.lock_timeout_s, log)
    with _phase(phases, "wait"):
        waited = _acquire(lock, dest, config, request, log)
    if waited is not None:
        return Outcome(waited, "waited", remote=remote)
    try:
        again = _verified(dest)
        if again is not None and matches(again, config, request):
            return Outcome(again, "waited", remote=remote)
        hook = load_hook(config.after_verify) if config.after_verify else None
        if store is None:  # the quick check answered, or nobody did: boto3 for the downloads
            store = store_factory(config)
        outcome = _fetch_locked(store, config, request, lock, hook, retry, log, phases)
    finally:
        lock.release()
    outcome.remote = remote
    return outcome


def _without_the_store(
    cached: CompleteModel | None,
    fallback: CompleteModel,
    conflicts: list[PinConflict],
    failure: FetchError,
    config: FetchConfig,
    log: Log,
) -> Outcome | Request:
    """The store could not be asked (no answer within the check's bound, or it refused our
    credentials): start on the verified cache as it is, or re-verify an unsynced one against
    its own records (the request returned), or, if the spec's pins contradict the cache,
    refuse: it is not the model they pin, and nothing can fetch the one they do."""
    dest = config.dest
    if conflicts:
        raise FetchError(
            ExitCode.CHECKSUM_MISMATCH,
            f"checksum mismatch: the spec's checksums ({EXPECTED_SHA256_ENV}) contradict the "
            f"verified cache in {dest} ({describe_conflicts(conflicts)}), and the store could "
            f"not be asked for the pinned version ({failure}); fix model.source.checksums, or "
            "bring the store back",
        )
    if cached is None:
        log(
            f"warning: the store could not be compared ({failure}); re-verifying the cache in "
            f"{dest} against its own records"
        )
        return request_from_model(fallback, config.source)
    denied = failure.code == ExitCode.CREDENTIALS
    log(
        f"warning: the store could not be compared with the verified cache in {dest} "
        f"({failure}); starting on the cache as it is"
        + ("; a start without this cache fails until the Secret is fixed" if denied else "")
    )
    return Outcome(cached, "warm", remote=report.REMOTE_UNREACHABLE)


def _synced_if_asked(outcome: Outcome, config: FetchConfig, log: Log) -> Outcome:
    """`--durability fsync` on a model verified without fsync during this boot (fetched in
    `boot` mode before the spec asked for fsync): fsync its files and rewrite the marker as
    synced, so that it is trusted across reboots as asked, without re-reading a byte. While
    another pod holds the lock this is skipped, not waited for: the model is trusted during
    this boot either way, and the next start syncs it."""
    model = outcome.model
    if model.synced or config.durability != Durability.FSYNC:
        return outcome
    dest = config.dest
    lock = LeaseLock(dest, config.lock_timeout_s, log)
    try:
        if not lock.try_acquire():
            log(f"{dest} is not fsynced yet and {lock.holder()} holds its lock: syncing it later")
            return outcome
        try:
            current = _verified(dest)
            if current is None or (current.files, current.artifacts) != (
                model.files,
                model.artifacts,
            ):
                return outcome  # changed since we looked: the next start decides again
            if not current.synced:
                _sync_tree(dest, {*current.files, *current.artifacts})
                lock.check_held()
                current = replace(current, synced=True)
                write_marker(current)
                log(f"fsynced the verified model in {dest}: trusted across reboots from now on")
        finally:
            lock.release()
    except OSError as exc:
        raise from_os_error(exc, f"fsyncing the model in {dest}") from None
    outcome.model = current
    return outcome


def _sync_tree(dest: Path, relpaths: set[str], synced: Collection[str] = ()) -> None:
    """fsync the files but those already `synced`, then every directory that holds one of them
    (their names), `dest` included."""
    for rel in sorted(relpaths - set(synced)):
        fsync_file(dest / rel)
    for directory in sorted({(dest / rel).parent for rel in relpaths} | {dest}):
        fsync_dir(directory)


def _same_source(model: CompleteModel, config: FetchConfig) -> bool:
    return model.source == config.source.uri and model.after_verify == config.after_verify


def _acquire(
    lock: LeaseLock, dest: Path, config: FetchConfig, request: Request, log: Log
) -> CompleteModel | None:
    """Take the lock, or return the model that another pod completed while we waited."""
    last_log = 0.0
    while True:
        try:
            if lock.try_acquire():
                return None
        except OSError as exc:
            raise from_os_error(exc, f"taking the download lock in {dest}") from None
        done = _verified(dest)
        if done is not None and matches(done, config, request):
            log(f"another pod completed the download into {dest}")
            return done
        now = time.monotonic()
        if now - last_log >= WAIT_LOG_S:
            log(f"waiting for {lock.holder()} to finish downloading into {dest}")
            last_log = now
        time.sleep(LOCK_POLL_S)


def _trusted_records(dest: Path, now: str | None) -> tuple[dict[str, FileRecord], set[str]]:
    """Records of files verified earlier (the previous marker, commits of a crashed run), and
    which of them were written without fsync during another boot than `now`: those files may
    have lost bytes in a reboot, so their records say what to re-hash against, not that the
    file is good."""
    staging = staging_dir(dest)
    records: dict[str, FileRecord] = {}
    recheck: set[str] = set()

    def take(relpath: str, rec: FileRecord, trusted: bool) -> None:
        records[relpath] = rec
        if trusted:
            recheck.discard(relpath)
        else:
            recheck.add(relpath)

    with contextlib.suppress(IncompleteModel):
        previous = read_marker(staging / "previous-marker.json", dest)
        ok = trusted_now(previous.synced, previous.boot_id, now)
        for relpath, rec in (*previous.files.items(), *previous.artifacts.items()):
            take(relpath, rec, ok)
    with contextlib.suppress(FileNotFoundError):
        for line in (staging / "committed.jsonl").read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                doc = json.loads(line)
                ok = trusted_now(doc.get("synced", True) is not False, doc.get("boot_id"), now)
                take(doc["relpath"], FileRecord(**doc["record"]), ok)
    return records, recheck


def _fetch_locked(
    store: ObjectStore,
    config: FetchConfig,
    request: Request,
    lock: LeaseLock,
    hook: Hook | None,
    retry: RetryPolicy,
    log: Log,
    phases: dict[str, float],
) -> Outcome:
    dest = config.dest
    staging = staging_dir(dest)
    now = current_boot_id()
    sync = needs_sync(config.durability, now)
    try:
        # The staging area is ours alone and disposable: a link planted in it is removed,
        # never written through.
        for link in confined.sanitize_tree(staging):
            log(f"warning: removed the symbolic link {link} from the staging area")
        staging.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(marker_path(dest), staging / "previous-marker.json")
            fsync_dir(dest)
    except OSError as exc:
        raise from_os_error(exc, f"preparing {staging}") from None
    trusted, recheck = _trusted_records(dest, now)
    previous_paths = set(trusted)

    kept: dict[str, FileRecord] = {}
    to_check: list[tuple[RemoteObject, str]] = []  # with the sha256 it must have
    to_fetch: list[RemoteObject] = []
    for obj in request.objects:
        want = request.expected.get(obj.relpath)
        rec = trusted.get(obj.relpath)
        try:
            st = confined.lstat(dest, obj.relpath)
        except FileNotFoundError:
            to_fetch.append(obj)
            continue
        except OSError as exc:
            raise from_os_error(exc, f"checking {dest / obj.relpath}") from None
        if obj.relpath not in recheck and _still_trusted(rec, st, obj, want):
            assert rec is not None
            kept[obj.relpath] = replace(rec, etag=obj.etag)
            continue
        if rec is not None and rec.matches(st) and want is not None and rec.sha256 != want:
            to_fetch.append(obj)  # its recorded digest contradicts the pin: re-hashing is moot
            continue
        digest = want if want is not None else _recorded_digest(rec, obj)
        if digest is not None and st.st_size == obj.size:
            to_check.append((obj, digest))  # re-hash rather than re-download
        else:
            to_fetch.append(obj)

    rehashed = []
    with _phase(phases, "verify"):
        for obj, want_digest in to_check:
            path = dest / obj.relpath
            digest = sha256_file(path)
            if digest == want_digest:
                kept[obj.relpath] = record_for(path, digest, obj.etag)
                rehashed.append(obj.relpath)
            else:
                log(f"{obj.relpath} on disk does not match its sha256: downloading it again")
                to_fetch.append(obj)

    jobs = [
        FileJob(obj, staging / "data" / obj.relpath, staging / "journal" / (obj.relpath + ".parts"))
        for obj in to_fetch
    ]
    total = sum(obj.size for obj in to_fetch)
    already = Downloader.resumable_bytes(jobs, now)
    # What the hook will write counts too (the converter's serving files: as large as the
    # checkpoints at fp32, half at fp16), or a full disk stops it after the whole download.
    extra = hook_space(hook, dest, {obj.relpath: obj.size for obj in request.objects})
    _check_space(dest, total - already, extra)
    if jobs:
        log(
            f"downloading {len(jobs)} of {len(request.objects)} files, {total / MB:.1f} MB "
            f"from {config.source.uri}" + (f" ({already / MB:.1f} MB resumed)" if already else "")
        )
    committed = _Committer(dest, staging, request.expected, lock, config.source, sync, now)
    progress = Progress(total, already, len(jobs), log, config.progress_interval_s)
    downloader = Downloader(
        store, config.concurrency, config.part_size, retry, progress, log, sync, now
    )
    with progress, _phase(phases, "download") if jobs else contextlib.nullcontext():
        downloader.run(jobs, committed.commit(progress))
    records = {**kept, **committed.records}

    artifacts: dict[str, FileRecord] = {}
    if hook is not None and config.after_verify:
        lock.check_held()
        with _phase(phases, "convert"):
            artifacts = run_hook(
                config.after_verify, hook, dest, {r: rec.sha256 for r, rec in records.items()}
            )

    current = set(records) | set(artifacts)
    for stale in sorted(previous_paths - current):
        if confined.unlink(dest, stale):  # never through a link out of the cache
            log(f"removed {stale}: no longer part of the model")

    # Synced: in `fsync` mode always; in `boot` mode when nothing was written without fsync in
    # this run (a re-verify after a reboot), where fsyncing what was just read back is cheap.
    synced = sync or not committed.records
    model = CompleteModel(
        dest, config.source.uri, records, artifacts, config.after_verify, synced, now
    )
    try:
        if synced:
            _sync_tree(dest, current, synced=committed.records)  # downloads were fsynced
        lock.check_held()
        write_marker(model)
        shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise from_os_error(exc, f"writing the completion marker in {dest}") from None
    return Outcome(model, "downloaded", downloaded_bytes=progress.fresh_bytes, rehashed=rehashed)


def _recorded_digest(rec: FileRecord | None, obj: RemoteObject) -> str | None:
    """The sha256 recorded for this very object version, if any (pure)."""
    if rec is None or rec.size != obj.size or not obj.etag or rec.etag != obj.etag:
        return None
    return rec.sha256


def _still_trusted(
    rec: FileRecord | None, st: os.stat_result, obj: RemoteObject, want: str | None
) -> bool:
    """Whether a file verified earlier is unchanged and still the wanted content (pure)."""
    if rec is None or not rec.matches(st) or rec.size != obj.size:
        return False
    return rec.sha256 == want if want is not None else rec.etag == obj.etag


def _check_space(dest: Path, download: int, hook_outputs: int = 0) -> None:
    """Fail before downloading when the volume cannot hold what is missing: the downloads and
    what the after-verify hook says it will write."""
    try:
        st = os.statvfs(dest)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    needed = download + hook_outputs
    if needed > free:
        what = (
            f"{download / MB:.1f} MB still to download and {hook_outputs / MB:.1f} MB for the "
            "--after-verify hook's outputs"
            if hook_outputs
            else f"{download / MB:.1f} MB still to download"
        )
        raise FetchError(
            ExitCode.DISK_FULL,
            f"disk full: {what} but {free / MB:.1f} MB free on the volume of {dest}; enlarge "
            "model.cache.size or free space",
        )


class _Committer:
    """Verifies a finished staging file and moves it to its final path (called from workers)."""

    def __init__(
        self,
        dest: Path,
        staging: Path,
        expected: Mapping[str, str],
        lock: LeaseLock,
        source: Source,
        synced: bool,
        boot_id: str | None,
    ) -> None:
        self.dest = dest
        self.synced = synced  # the committed files were fsynced, else tied to boot_id
        self.boot_id = boot_id
        self.journal = staging / "committed.jsonl"
        self.expected = expected
        self.lock = lock
        self.source = source
        self.records: dict[str, FileRecord] = {}

    def commit(self, progress: Progress) -> Callable[[FileJob, str], None]:
        def on_complete(job: FileJob, digest: str) -> None:
            obj = job.obj
            want = self.expected.get(obj.relpath)
            if want is not None and digest != want:
                discard(job)
                raise FetchError(
                    ExitCode.CHECKSUM_MISMATCH,
                    f"checksum mismatch for {obj.relpath}: expected sha256 {want}, the object "
                    f"s3://{self.source.bucket}/{obj.key} has {digest}; fix the expected checksum or the object "
                    "(the download was discarded)",
                )
            self.lock.check_held()
            target = self.dest / obj.relpath
            try:
                confined.move_in(job.data_path, self.dest, obj.relpath)
                rec = record_for(target, digest, obj.etag)
                with open(self.journal, "a") as f:
                    doc = {
                        "relpath": obj.relpath,
                        "record": asdict(rec),
                        "synced": self.synced,
                        "boot_id": self.boot_id,
                    }
                    f.write(json.dumps(doc) + "\n")
                job.journal_path.unlink(missing_ok=True)
            except OSError as exc:
                raise from_os_error(exc, f"moving {obj.relpath} into place") from None
            self.records[obj.relpath] = rec
            progress.file_done()

        return on_complete
