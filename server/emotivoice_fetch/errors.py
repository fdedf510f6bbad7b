"""Failures the fetch step can end with, each with its own exit code.

The init container's exit code is the only thing the kubelet keeps after the logs rotate, so each
kind of failure that a user fixes differently gets its own code. This module is the single source
of truth for the codes and their meanings: the operator names them in a service's status message
(``reconcile/status.py``), and docs/reference/fetch-exit-codes.md documents every one (a test
keeps it so).
"""

from __future__ import annotations

import enum

# The console script's name: every line it logs starts with "emotivoice-fetch: ".
PROG = "emotivoice-fetch"


class ExitCode(enum.IntEnum):
    """Process exit status of `emotivoice-fetch`."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2  # bad arguments or environment (argparse uses 2 as well)
    CREDENTIALS = 3  # the store rejected the credentials or denied access
    MISSING_BUCKET = 4
    MISSING_KEY = 5  # an object the model needs is not in the bucket
    CHECKSUM_MISMATCH = 6
    DISK_FULL = 7
    PERMISSION_DENIED = 8  # the volume cannot be written
    SOURCE_UNREACHABLE = 9  # transient errors outlasted every retry
    LOCK_LOST = 10  # another pod took over the download lock
    HOOK_FAILED = 11  # the --after-verify post-processing step failed
    SOURCE_CHANGED = 12  # an object was replaced in the store while we downloaded it
    UNSAFE_CACHE = 13  # a symbolic link inside the cache where a directory belongs
    INTERRUPTED = 130  # SIGINT (run by hand and interrupted); a restart resumes the download


# What each code means, in the few words a status message has room for.
MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "done",
    ExitCode.UNEXPECTED: "unexpected error",
    ExitCode.USAGE: "bad arguments or environment",
    ExitCode.CREDENTIALS: "the store refused the credentials",
    ExitCode.MISSING_BUCKET: "no such bucket",
    ExitCode.MISSING_KEY: "an object of the model is missing from the store",
    ExitCode.CHECKSUM_MISMATCH: "checksum mismatch",
    ExitCode.DISK_FULL: "the cache volume is full",
    ExitCode.PERMISSION_DENIED: "the cache volume cannot be written",
    ExitCode.SOURCE_UNREACHABLE: "the store did not answer, every retry spent",
    ExitCode.LOCK_LOST: "another pod took over the download lock",
    ExitCode.HOOK_FAILED: "the after-verify conversion failed",
    ExitCode.SOURCE_CHANGED: "an object changed in the store during the download",
    ExitCode.UNSAFE_CACHE: "a symbolic link inside the cache",
    ExitCode.INTERRUPTED: "interrupted",
}


def describe_exit(code: int) -> str:
    """``exit 6 (checksum mismatch)``: an exit status as a user reads it in a status message.

    Above 128 and not ours, the process was killed by signal ``code - 128`` (137: SIGKILL, as
    the kernel's OOM killer sends it; the kubelet then says OOMKilled)."""
    try:
        return f"exit {code} ({MEANINGS[ExitCode(code)]})"
    except ValueError:
        if code > 128:
            return f"exit {code} (killed by signal {code - 128})"
        return f"exit {code}"


class FetchError(Exception):
    """A failure with a one-line message meant for `kubectl logs` and an exit code."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class TransientError(Exception):
    """A failure worth retrying (connection reset, 5xx, timeout); never shown as is."""


def from_os_error(exc: OSError, doing: str) -> FetchError:
    """Turn a file-system error into the exit code and message a user can act on."""
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FetchError(
            ExitCode.DISK_FULL,
            f"disk full while {doing}: the model cache volume has no space left; enlarge it "
            "(model.cache.size) or free space, then restart the pod (the download resumes)",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
        return FetchError(
            ExitCode.PERMISSION_DENIED,
            f"{reason} while {doing}: the fetch container cannot write the model cache volume "
            "(check the volume's access mode, fsGroup and runAsUser)",
        )
    return FetchError(ExitCode.UNEXPECTED, f"{exc.strerror or exc} while {doing}")
