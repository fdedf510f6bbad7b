"""One file being downloaded into the staging area: its descriptor, landed bytes, journal, hash.

Bytes may land in any order (several connections can fill one file), but a sha256 can only be
fed in file order. The hash therefore follows a frontier: everything before `hashed` is hashed.
A chunk that lands exactly at the frontier is hashed from the buffer it arrived in (for a large
file on its own thread, hashlane.py, so the hash overlaps the download), so a file streamed in
order (the common case on a fast link) is never read back. Bytes that landed ahead
of the frontier are read back from the file once the gap before them closes; that also covers
a resumed file, whose journaled prefix is hashed once before its download continues. Whatever
the path, the digest covers every byte of the file in order before the file is committed.

The journal lists landed ranges (written by a background thread about once a second, see
`flush_journal`). In `fsync` durability it does so only after an fdatasync of the data, so it
never claims bytes that a power loss could have lost, and its header says `"synced": true`. In
`boot` durability (see durability.py) there is no fdatasync: the header records the boot id and
`"synced": false`, and `load_journal` trusts such a journal only during the same boot, when
every landed byte is still in the page cache or on disk (a killed process loses nothing). A
journal from another boot is ignored and the file is downloaded afresh: its ranges cannot be
re-checked on their own, since the only digest we have is that of the whole file. Either way
the resumed prefix is read back and hashed with the rest, so the file is verified end to end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emotivoice_fetch.durability import current_boot_id, trusted_now
from emotivoice_fetch.errors import ExitCode, FetchError
from emotivoice_fetch.hashlane import HashLane
from emotivoice_fetch.plan import Range, RemoteObject, merge_ranges

READBACK_CHUNK = 4 * 1024 * 1024
WRITEBACK_EVERY = 16 * 1024 * 1024
# Files at least this large hash on a thread of their own (hashlane.py); smaller ones inline.
LANE_MIN_BYTES = 32 * 1024 * 1024

_local = threading.local()


def _readback_buffer() -> bytearray:
    """One reusable read-back buffer per thread: no fresh 4 MiB allocation per read."""
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(READBACK_CHUNK)
    return buf


@dataclass(frozen=True)
class FileJob:
    """One object to download into `data_path`, with its resume journal."""

    obj: RemoteObject
    data_path: Path
    journal_path: Path


def _object_id(obj: RemoteObject) -> dict[str, object]:
    return {"key": obj.key, "size": obj.size, "etag": obj.etag}


def _journal_header(obj: RemoteObject, synced: bool, boot_id: str | None) -> str:
    return json.dumps({**_object_id(obj), "synced": synced, "boot_id": boot_id}, sort_keys=True)


def _header_trusted(line: str, obj: RemoteObject, now: str | None) -> bool:
    """Whether a journal's header is for this object version and its ranges can be believed."""
    try:
        header = json.loads(line)
    except ValueError:
        return False
    if not isinstance(header, dict):
        return False
    if {k: header.get(k) for k in ("key", "size", "etag")} != _object_id(obj):
        return False
    boot_id = header.get("boot_id")
    return trusted_now(
        header.get("synced", True) is not False, boot_id if isinstance(boot_id, str) else None, now
    )


THIS_BOOT = "<this boot>"  # load_journal's default: read the boot id (None means unknown)


def load_journal(job: FileJob, now: str | None = THIS_BOOT) -> list[Range]:
    """Ranges already on disk for this exact object version; [] if none, for another version,
    or written without fdatasync during another boot than `now` (default: this boot)."""
    try:
        lines = job.journal_path.read_text().splitlines()
        data_size = job.data_path.stat().st_size
    except (OSError, UnicodeDecodeError):
        # Missing, unreadable or (whatever the paths' checks missed) unnamable: no journal to
        # trust, so the file is downloaded afresh, and any real problem with the path surfaces
        # where the file is opened for writing, as a fetch error.
        return []
    if not lines or data_size != job.obj.size:
        return []
    if not _header_trusted(lines[0], job.obj, current_boot_id() if now == THIS_BOOT else now):
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


class StagedFile:
    """A file being filled by one or more connections and hashed in order as it fills."""

    def __init__(
        self,
        job: FileJob,
        done: list[Range],
        on_complete: Callable[[FileJob, str], None],
        sync: bool = True,
        boot_id: str | None = None,
    ) -> None:
        """`sync`: fdatasync before journaling and fsync before handing the file over (the
        `fsync` durability); otherwise neither, and the journal is tied to `boot_id`."""
        self.job = job
        self.size = job.obj.size
        self.on_complete = on_complete
        self.sync = sync
        job.data_path.parent.mkdir(parents=True, exist_ok=True)
        job.journal_path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(job.data_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        if os.fstat(self.fd).st_size != self.size:
            os.ftruncate(self.fd, self.size)  # sparse: space is taken as bytes arrive
        self._start_journal(done, boot_id)
        self.landed = done  # on disk (or in the page cache), merged
        self.unflushed: list[Range] = []
        self.hasher = hashlib.sha256()
        # In-stream chunks of a large file go through the lane; read-backs drain it first and
        # hash inline, so the hasher always sees the bytes in file order.
        self._lane = (
            HashLane(self.hasher, f"sha256 {job.obj.relpath}")
            if self.size >= LANE_MIN_BYTES
            else None
        )
        self.hashed = 0
        self.hashing = False  # one thread at a time feeds the hasher
        self.written_back = 0  # hashed bytes before this are already on their way to disk
        self.finished = False
        self.mu = threading.Lock()
        self.flush_mu = threading.Lock()  # held while fd may be flushed, and to close it

    def _start_journal(self, done: list[Range], boot_id: str | None) -> None:
        """Write a fresh journal in this run's mode, carrying over the resumed ranges: its
        header must describe every line under it, and a resumed journal may come from a run
        in the other mode (a synced header above unsynced lines would outlive a reboot)."""
        if done and self.sync:
            os.fdatasync(self.fd)  # resumed ranges may be unsynced (same boot): sync them now
        header = _journal_header(self.job.obj, self.sync, None if self.sync else boot_id)
        text = header + "\n" + "".join(f"{start} {end}\n" for start, end in done)
        tmp = self.job.journal_path.with_name(self.job.journal_path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.job.journal_path)

    def land(self, data: memoryview, offset: int) -> None:
        """Write `data` at `offset`; hash it if it extends the hashed prefix (on the spot, or
        queued for the file's hashing thread: `data` must stay unchanged, as the `bytes` of a
        read do)."""
        view = data
        pos = offset
        while view:
            n = os.pwrite(self.fd, view, pos)
            view = view[n:]
            pos += n
        rng = (offset, pos)
        with self.mu:
            self.landed = _add_range(self.landed, rng)
            self.unflushed.append(rng)
            in_stream = not self.hashing and self.hashed == offset
            if in_stream:
                self.hashing = True
        if in_stream:
            try:
                if self._lane is not None:
                    self._lane.put(data)
                else:
                    self.hasher.update(data)
                if self.sync and pos - self.written_back >= WRITEBACK_EVERY:
                    self._write_back(pos)
            finally:
                with self.mu:
                    self.hashed = pos
                    self.hashing = False

    def _write_back(self, upto: int) -> None:
        """`fsync` durability only: start writing hashed bytes to disk now, so the final fsync
        does not wait for the whole file, and let the kernel drop them from the page cache
        (hashed, never read again). In `boot` durability nothing waits for the disk, and
        forcing write-back here cost the fetch a third of its time on a fast store (the
        submission runs in this process: 0.3-1.3 s of system time for 600 MB, measured); the
        kernel's flusher writes the pages in the background, and the server's first load then
        finds them still in the page cache.
        Called by the thread that holds the hasher, so never twice for the same bytes."""
        with contextlib.suppress(OSError, AttributeError):
            os.posix_fadvise(
                self.fd, self.written_back, upto - self.written_back, os.POSIX_FADV_DONTNEED
            )
        self.written_back = upto

    def catch_up(self) -> None:
        """Hash whatever landed contiguously past the frontier (reading it back); if that was
        the whole file, flush, close and hand it over. Safe to call from any thread, any time:
        the last thread to land bytes of the file always calls it, so no file is left behind."""
        while True:
            with self.mu:
                if self.hashing or self.finished:
                    return
                frontier = _contiguous_end(self.landed, self.hashed)
                if frontier == self.hashed:
                    if self.hashed < self.size:
                        return
                    self.finished = True  # all bytes hashed: finish exactly once
                    break
                self.hashing = True
                pos = self.hashed
            try:
                self._read_back(pos, frontier)
            finally:
                with self.mu:
                    self.hashed = frontier
                    self.hashing = False
        self.flush_journal()
        with self.flush_mu:
            if self.sync:
                os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
        if self._lane is not None:
            self._lane.drain()  # the last streamed chunks, before the digest is read
            self._lane.stop()
        self.on_complete(self.job, self.hasher.hexdigest())

    def _read_back(self, pos: int, end: int) -> None:
        if self._lane is not None:
            self._lane.drain()  # what streamed in before these bytes goes in first
        buf = _readback_buffer()
        while pos < end:
            view = memoryview(buf)[: min(READBACK_CHUNK, end - pos)]
            n = os.preadv(self.fd, [view], pos)
            if n <= 0:
                raise FetchError(ExitCode.UNEXPECTED, f"{self.job.data_path} shrank")
            self.hasher.update(view[:n])
            pos += n

    def flush_journal(self) -> None:
        """Record the landed bytes in the journal; in `sync` mode make them durable first."""
        with self.flush_mu:
            if self.fd < 0:
                return
            with self.mu:
                pending, self.unflushed = self.unflushed, []
            if not pending:
                return
            if self.sync:
                os.fdatasync(self.fd)  # the data first: the journal must never run ahead of it
            with open(self.job.journal_path, "a") as journal:
                journal.writelines(f"{start} {end}\n" for start, end in merge_ranges(pending))

    def close(self) -> None:
        if self._lane is not None:
            self._lane.stop()
        with contextlib.suppress(OSError):
            self.flush_journal()
        with self.flush_mu:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


def _add_range(ranges: list[Range], rng: Range) -> list[Range]:
    """Add one range to a merged list; the usual case (extending the last range) is O(1)."""
    start, end = rng
    if ranges and ranges[-1][0] <= start <= ranges[-1][1]:
        last = ranges[-1]
        ranges[-1] = (last[0], max(last[1], end))
        return ranges
    return merge_ranges([*ranges, rng])


def _contiguous_end(ranges: list[Range], pos: int) -> int:
    """How far the bytes from `pos` on are landed without a gap."""
    for start, end in ranges:
        if start <= pos < end:
            return end
    return pos
