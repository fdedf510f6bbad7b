"""Parallel, resumable downloads into the staging area, hashed while they land.

`concurrency` connections take segments from a `Scheduler`: one stream per file over its
missing bytes, split into ranged GETs only where a stream is slow (see schedule.py). Bytes are
written with pwrite at their offset into a sparse staging file and hashed in file order as they
land (see staged.py), so a file is verified moments after its last byte arrives. Landed ranges
go to a per-file journal (after an fdatasync in `fsync` durability, tied to the boot id in
`boot` durability; see durability.py) from a background thread about once a second; a
restarted fetch reads the journal and downloads only what is missing. A transient error inside
a segment resumes from the last byte written.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from emotivoice_fetch.cpu import CpuGauge
from emotivoice_fetch.errors import ExitCode, FetchError, TransientError, from_os_error
from emotivoice_fetch.plan import covered, missing_ranges
from emotivoice_fetch.progress import Progress
from emotivoice_fetch.retry import RetryPolicy
from emotivoice_fetch.schedule import Scheduler, Segment
from emotivoice_fetch.staged import FileJob, StagedFile, discard, load_journal
from emotivoice_fetch.store import ObjectChanged, ObjectStore

__all__ = ["Downloader", "FileJob", "discard", "load_journal"]

READ_CHUNK = 1024 * 1024
JOURNAL_FLUSH_S = 1.0


class Downloader:
    """Runs the connections; the first failure stops every one of them."""

    def __init__(
        self,
        store: ObjectStore,
        concurrency: int,
        part_size: int,
        retry: RetryPolicy,
        progress: Progress,
        log: Callable[[str], None],
        sync: bool = True,
        boot_id: str | None = None,
    ) -> None:
        self.store = store
        self.sync = sync  # fsync files and fdatasync before journaling (see StagedFile)
        self.boot_id = boot_id
        self.concurrency = concurrency
        self.part_size = part_size  # the smallest range a split hands to another connection
        self.retry = retry
        self.progress = progress
        self.log = log
        self.abort = threading.Event()
        self._log_mu = threading.Lock()
        self._last_retry_log = 0.0

    @staticmethod
    def resumable_bytes(jobs: list[FileJob], boot_id: str | None) -> int:
        return sum(covered(job.obj.size, load_journal(job, boot_id)) for job in jobs)

    def run(self, jobs: list[FileJob], on_complete: Callable[[FileJob, str], None]) -> None:
        """Download every job; `on_complete(job, sha256_hex)` runs once per finished file."""
        files: list[StagedFile] = []
        ranges: list[tuple[StagedFile, int, int]] = []
        try:
            for job in sorted(jobs, key=lambda j: (-j.obj.size, j.obj.relpath)):
                done = load_journal(job, self.boot_id)
                staged = StagedFile(job, done, on_complete, self.sync, self.boot_id)
                files.append(staged)
                gaps = missing_ranges(job.obj.size, done, max(job.obj.size, 1))
                ranges.extend((staged, start, end) for start, end in gaps)
                if not gaps:
                    ranges.append((staged, 0, 0))  # already all on disk: hash and commit
        except OSError as exc:
            for staged in files:
                staged.close()
            raise from_os_error(exc, "preparing the staging area") from None
        scheduler = Scheduler(ranges, min_split=self.part_size, cpu_busy=CpuGauge().busy)
        stop_flusher = threading.Event()
        flusher = threading.Thread(
            target=self._flush_loop, args=(files, stop_flusher), name="journal", daemon=True
        )
        flusher.start()
        try:
            workers = min(self.concurrency, max(1, sum(end - start for _, start, end in ranges)))
            with ThreadPoolExecutor(workers, thread_name_prefix="fetch") as pool:
                futures = [pool.submit(self._worker, scheduler) for _ in range(workers)]
                wait(futures, return_when=FIRST_EXCEPTION)
                if any(f.done() and f.exception() for f in futures):
                    self.abort.set()
                    scheduler.stop()
                    wait(futures)
                    raise _most_telling([f.exception() for f in futures])
        finally:
            stop_flusher.set()
            flusher.join()
            for staged in files:
                staged.close()

    @staticmethod
    def _flush_loop(files: list[StagedFile], stop: threading.Event) -> None:
        """Journal landed bytes about once a second, off the download threads: the fdatasync
        waits for the disk, and a download thread waiting there idles a connection."""
        while not stop.wait(JOURNAL_FLUSH_S):
            for staged in files:
                with contextlib.suppress(OSError):
                    staged.flush_journal()

    def _worker(self, scheduler: Scheduler[StagedFile]) -> None:
        while not self.abort.is_set():
            seg = scheduler.next()
            if seg is None:
                return
            try:
                if seg.pos > seg.file.hashed:
                    seg.file.catch_up()  # a resumed prefix: hashed once, then the stream is
                self._stream(scheduler, seg)
                seg.file.catch_up()
            except OSError as exc:
                raise from_os_error(exc, f"writing {seg.file.job.obj.relpath}") from None
            finally:
                scheduler.finish(seg)

    def _stream(self, scheduler: Scheduler[StagedFile], seg: Segment[StagedFile]) -> None:
        """Download the segment, reconnecting from the last byte written after a transient
        error; stops at the segment's end even if a split moved it while the GET was open."""
        staged = seg.file
        obj = staged.job.obj
        failures = 0
        while not self.abort.is_set():
            n = scheduler.claim(seg, READ_CHUNK)
            if n == 0:
                return
            before = seg.pos
            try:
                body = self.store.open_range(obj.key, seg.pos, seg.end, obj.etag, obj.size)
                with contextlib.closing(body):
                    while n > 0:
                        chunk = body.read(n)
                        staged.land(memoryview(chunk), seg.pos)
                        scheduler.advance(seg, len(chunk))
                        self.progress.add(len(chunk))
                        if self.abort.is_set():
                            return
                        n = scheduler.claim(seg, READ_CHUNK)
                return
            except TransientError as exc:
                failures = 1 if seg.pos > before else failures + 1
                if failures >= self.retry.attempts:
                    raise FetchError(
                        ExitCode.SOURCE_UNREACHABLE,
                        f"{exc} (failed {failures} times in a row): is the object store up?",
                    ) from None
                delay = self.retry.delay(failures)
                self._log_retry(f"{exc}; retrying from byte {seg.pos} in {delay:.1f} s")
                self.abort.wait(delay)
            except ObjectChanged as exc:
                discard(staged.job)
                raise FetchError(
                    ExitCode.SOURCE_CHANGED,
                    f"{exc}: the partial download was discarded; restart to fetch the new version",
                ) from None

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
