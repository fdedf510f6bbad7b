"""Parallel, ranged, resumable downloads into the staging area, hashed while they land.

Work is a FIFO of (file, byte range) parts shared by `concurrency` threads, largest file first,
so big files are split across connections and small files fill the gaps. Each part is written
with pwrite at its offset into a sparse staging file. Completed ranges go to a per-file journal,
but only after an fdatasync of the data (batched, about once a second), by a background thread,
so a journal never claims bytes that a power loss could have lost; a restarted fetch reads the journal and downloads only
what is missing. A transient error inside a part resumes from the last byte written.

The sha256 is computed in file order by whichever thread extends the contiguous prefix of
finished bytes, reading them back from the page cache; hashing thus overlaps the download and
a file is verified moments after its last part lands.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from emotivoice_fetch.errors import ExitCode, FetchError, TransientError, from_os_error
from emotivoice_fetch.plan import Range, RemoteObject, covered, merge_ranges, missing_ranges
from emotivoice_fetch.progress import Progress
from emotivoice_fetch.retry import RetryPolicy
from emotivoice_fetch.store import ObjectChanged, ObjectStore

HASH_CHUNK = 4 * 1024 * 1024
JOURNAL_FLUSH_S = 1.0


_local = threading.local()


def _hash_buffer() -> bytearray:
    """One reusable read-back buffer per thread: no fresh 4 MiB allocation per read."""
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(HASH_CHUNK)
    return buf


@dataclass(frozen=True)
class FileJob:
    """One object to download into `data_path`, with its resume journal."""

    obj: RemoteObject
    data_path: Path
    journal_path: Path


def _journal_header(obj: RemoteObject) -> str:
    return json.dumps({"key": obj.key, "size": obj.size, "etag": obj.etag}, sort_keys=True)


def load_journal(job: FileJob) -> list[Range]:
    """Ranges already on disk for this exact object version; [] if none or for another version."""
    try:
        lines = job.journal_path.read_text().splitlines()
        data_size = job.data_path.stat().st_size
    except (FileNotFoundError, UnicodeDecodeError):
        return []
    if not lines or lines[0] != _journal_header(job.obj) or data_size != job.obj.size:
        return []
    done: list[Range] = []
    for line in lines[1:]:
        try:
            start, end = (int(x) for x in line.split())
        except ValueError:
            break  # a line cut short by a crash: everything after it is unknown
        done.append((start, end))
    return merge_ranges(done)


def discard(job: FileJob) -> None:
    for path in (job.journal_path, job.data_path):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class _FileState:
    """A file being downloaded: its descriptor, finished ranges, journal and running hash."""

    def __init__(
        self, job: FileJob, done: list[Range], on_complete: Callable[[FileJob, str], None]
    ) -> None:
        self.job = job
        self.size = job.obj.size
        self.on_complete = on_complete
        job.data_path.parent.mkdir(parents=True, exist_ok=True)
        job.journal_path.parent.mkdir(parents=True, exist_ok=True)
        if not done:
            job.journal_path.write_text(_journal_header(job.obj) + "\n")
        self.fd = os.open(job.data_path, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self.fd).st_size != self.size:
            os.ftruncate(self.fd, self.size)  # sparse: space is taken as bytes arrive
        self.done = done
        self.unflushed: list[Range] = []
        self.hasher = hashlib.sha256()
        self.hashed = 0
        self.hashing = False
        self.finished = False
        self.mu = threading.Lock()
        self.flush_mu = threading.Lock()  # held while fd may be flushed, and to close it

    def write(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view = view[n:]
            offset += n

    def part_done(self, rng: Range) -> None:
        with self.mu:
            self.done = merge_ranges([*self.done, rng])
            self.unflushed.append(rng)
        self.advance_hash()

    def flush_journal(self) -> None:
        with self.flush_mu:
            if self.fd < 0:
                return
            with self.mu:
                pending, self.unflushed = self.unflushed, []
            if not pending:
                return
            os.fdatasync(self.fd)  # the data first: the journal must never run ahead of it
            with open(self.job.journal_path, "a") as journal:
                journal.writelines(f"{start} {end}\n" for start, end in pending)

    def advance_hash(self) -> None:
        while True:
            with self.mu:
                if self.hashing or self.finished:
                    return
                frontier = self.hashed
                for start, end in self.done:
                    if start <= frontier < end:
                        frontier = end
                if frontier == self.hashed:
                    if self.hashed < self.size:
                        return
                    self.finished = True  # all bytes hashed: finish exactly once
                    break
                self.hashing = True
                pos = self.hashed
            buf = _hash_buffer()
            while pos < frontier:
                view = memoryview(buf)[: min(HASH_CHUNK, frontier - pos)]
                n = os.preadv(self.fd, [view], pos)
                if n <= 0:
                    raise FetchError(ExitCode.UNEXPECTED, f"{self.job.data_path} shrank")
                self.hasher.update(view[:n])
                pos += n
            with self.mu:
                self.hashed = frontier
                self.hashing = False
        self.flush_journal()
        with self.flush_mu:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
        self.on_complete(self.job, self.hasher.hexdigest())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.flush_journal()
        with self.flush_mu:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


class Downloader:
    """Runs the part queue on a thread pool; the first failure stops every worker."""

    def __init__(
        self,
        store: ObjectStore,
        concurrency: int,
        part_size: int,
        retry: RetryPolicy,
        progress: Progress,
        log: Callable[[str], None],
    ) -> None:
        self.store = store
        self.concurrency = concurrency
        self.part_size = part_size
        self.retry = retry
        self.progress = progress
        self.log = log
        self.abort = threading.Event()
        self._log_mu = threading.Lock()
        self._last_retry_log = 0.0

    @staticmethod
    def resumable_bytes(jobs: list[FileJob]) -> int:
        return sum(covered(job.obj.size, load_journal(job)) for job in jobs)

    def run(self, jobs: list[FileJob], on_complete: Callable[[FileJob, str], None]) -> None:
        """Download every job; `on_complete(job, sha256_hex)` runs once per finished file."""
        states: list[_FileState] = []
        tasks: list[tuple[_FileState, Range | None]] = []
        try:
            for job in sorted(jobs, key=lambda j: (-j.obj.size, j.obj.relpath)):
                done = load_journal(job)
                state = _FileState(job, done, on_complete)
                states.append(state)
                parts = missing_ranges(job.obj.size, done, self.part_size)
                tasks.extend((state, rng) for rng in parts)
                if not parts:
                    tasks.append((state, None))  # already all on disk: hash and commit
        except OSError as exc:
            for state in states:
                state.close()
            raise from_os_error(exc, "preparing the staging area") from None
        stop_flusher = threading.Event()
        flusher = threading.Thread(
            target=self._flush_loop, args=(states, stop_flusher), name="journal", daemon=True
        )
        flusher.start()
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="fetch") as pool:
                futures = [pool.submit(self._task, state, rng) for state, rng in tasks]
                wait(futures, return_when=FIRST_EXCEPTION)
                errors = [f.exception() for f in futures if f.done() and f.exception()]
                if errors:
                    self.abort.set()
                    for future in futures:
                        future.cancel()
                    wait(futures)
                    errors = [f.exception() for f in futures if not f.cancelled() and f.exception()]
                    raise _most_telling(errors)
        finally:
            stop_flusher.set()
            flusher.join()
            for state in states:
                state.close()

    @staticmethod
    def _flush_loop(states: list[_FileState], stop: threading.Event) -> None:
        """Journal finished parts about once a second, off the download threads: the
        fdatasync waits for the disk, and a download thread waiting there idles a connection."""
        while not stop.wait(JOURNAL_FLUSH_S):
            for state in states:
                with contextlib.suppress(OSError):
                    state.flush_journal()

    def _task(self, state: _FileState, rng: Range | None) -> None:
        try:
            if rng is not None:
                self._download_part(state, rng)
            state.advance_hash()
        except OSError as exc:
            raise from_os_error(exc, f"writing {state.job.obj.relpath}") from None

    def _download_part(self, state: _FileState, rng: Range) -> None:
        obj = state.job.obj
        start, end = rng
        pos = start
        failures = 0
        while pos < end:
            if self.abort.is_set():
                return
            before = pos
            try:
                with contextlib.closing(self.store.read_range(obj.key, pos, end, obj.etag)) as body:
                    for chunk in body:
                        state.write(chunk, pos)
                        pos += len(chunk)
                        self.progress.add(len(chunk))
                        if self.abort.is_set():
                            return
            except TransientError as exc:
                failures = 1 if pos > before else failures + 1
                if failures >= self.retry.attempts:
                    raise FetchError(
                        ExitCode.SOURCE_UNREACHABLE,
                        f"{exc} (failed {failures} times in a row): is the object store up?",
                    ) from None
                delay = self.retry.delay(failures)
                self._log_retry(f"{exc}; retrying from byte {pos} in {delay:.1f} s")
                self.abort.wait(delay)
            except ObjectChanged as exc:
                discard(state.job)
                raise FetchError(
                    ExitCode.SOURCE_CHANGED,
                    f"{exc}: the partial download was discarded; restart to fetch the new version",
                ) from None
        state.part_done(rng)

    def _log_retry(self, message: str) -> None:
        with self._log_mu:
            now = time.monotonic()
            if now - self._last_retry_log < 1.0:
                return
            self._last_retry_log = now
        self.log(message)


def _most_telling(errors: list[BaseException | None]) -> BaseException:
    """Prefer a FetchError over the knock-on failures of workers that were stopped."""
    real = [e for e in errors if e is not None]
    for err in real:
        if isinstance(err, FetchError):
            return err
    return real[0]
