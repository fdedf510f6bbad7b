"""Durability modes: fsync every file (`fsync`), or check the boot on every start (`boot`).

Why `boot` is the default: a pod should not wait for the writeback of a multi-GB model to a
slow (network) disk. Waiting buys nothing against what pods usually live through: a killed or
evicted process or pod never loses data that reached the page cache, since the kernel writes it
back on its own. Only a node crash or reboot can lose bytes that were written but not yet on
disk, and a reboot is visible: the kernel's boot id (/proc/sys/kernel/random/boot_id) changes.

So in `boot` mode the fetcher writes no fsync on the cold path. The completion marker records
the boot id and `"synced": false`; `marker.verify_complete` (the server's check) accepts such a
marker only during the same boot. After a reboot it refuses it, and the next `emotivoice-fetch`
re-hashes every file from disk against the sha256 recorded when it was downloaded, re-fetches
what no longer matches, fsyncs the files (nearly free: after a reboot every byte was just read
from the disk, nothing is dirty) and writes a marker that says `"synced": true`, which is
trusted across later reboots. Resume journals follow the same rule: a journal written without
fdatasync lists ranges that are trusted in the same boot only (see staged.py).

The guarantee, in both modes: the server never loads a model that differs from the verified
bytes. `fsync` additionally keeps a warm start after a reboot free of re-hashing, at the price
of waiting for the disk on the cold path.

Where the boot id cannot be read, `boot` falls back to `fsync` (there is no reboot to detect).
A volume shared (RWX) by pods on several nodes sees a different boot id on each node, so a pod
on another node than the one that downloaded an unsynced model re-hashes it once: acceptable,
it costs a read of the model and no download, and after it the marker says synced.

Test hook: the environment variable `EMOTIVOICE_FETCH_BOOT_ID`, when set, replaces the kernel's
boot id (an empty value means "unreadable"), so tests can simulate a reboot.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
BOOT_ID_ENV = "EMOTIVOICE_FETCH_BOOT_ID"  # test hook: simulate a reboot


class Durability(enum.StrEnum):
    FSYNC = "fsync"
    BOOT = "boot"


DEFAULT_DURABILITY = Durability.BOOT


def current_boot_id() -> str | None:
    """This boot's id, or None when it cannot be read (then nothing may rely on it)."""
    override = os.environ.get(BOOT_ID_ENV)
    if override is not None:
        return override.strip() or None
    try:
        return BOOT_ID_PATH.read_text().strip() or None
    except OSError:
        return None


def needs_sync(mode: Durability, boot_id: str | None) -> bool:
    """Whether data must be fsynced before it is recorded: always in `fsync` mode, and in
    `boot` mode when there is no boot id to tie unsynced data to."""
    return mode == Durability.FSYNC or boot_id is None


def trusted_now(synced: bool, boot_id: str | None, now: str | None) -> bool:
    """Whether a record (marker, journal line) can be believed without re-reading the data:
    synced data survives reboots; unsynced data only within the boot that wrote it."""
    return synced or (boot_id is not None and boot_id == now)


def fsync_file(path: Path) -> None:
    """Flush one file's data to the disk (cheap when nothing of it is dirty)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
