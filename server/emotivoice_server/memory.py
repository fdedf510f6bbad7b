"""Keep freed memory in the process, so that a request does not page-fault its buffers back in.

glibc's malloc returns large blocks to the kernel when they are freed (blocks above a threshold
that it raises as it sees them, up to 32 MiB, are mmap-ed; a heap top above 128 KiB is trimmed).
A synthesis allocates and frees hundreds of MiB of activations, so every request, and above all
the first one of a new length, pays for the kernel zeroing those pages again. Fixing both
thresholds keeps blocks up to 32 MiB in the heap once warm-up has used them; resident memory
then stays at the peak of the largest request instead of dropping between requests.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# The largest value glibc accepts for M_MMAP_THRESHOLD on 64-bit systems.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Sets both thresholds; False (and a log line) where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.info("malloc tuning skipped: no glibc mallopt in %s", name)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    log.info(
        "malloc tuning %s: mmap_threshold=%d MiB trim_threshold=%d MiB",
        "applied" if ok else "refused",
        MMAP_THRESHOLD_BYTES >> 20,
        TRIM_THRESHOLD_BYTES >> 20,
    )
    return ok
