"""Whether a process of this host still runs: what the sweeps of a dead process's leftovers
(temporary job folders, partial uploads) ask; and how a worker process hands memory back."""

from __future__ import annotations

import ctypes
import gc
import os
import re
import socket
from pathlib import Path

import pyarrow as pa

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
# Arrays of more than this are mapped and handed back when freed (a file's per-row arrays);
# smaller ones (a block's or an entity partition's temporaries) come from the heap and are
# reused rather than faulted in afresh: 10M rows' entity history took 5.5 s at glibc's 128 KiB,
# 3.2 s at 4 MiB (docs/decisions.md).
MMAP_THRESHOLD = 4 * 1024 * 1024

# This host's name as it may appear in a file or key name.
HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())


def running(pid: int) -> bool:
    """True while the process exists and is not a zombie (killed, not yet reaped: it answers
    signal 0, yet is gone); another user's live process counts as running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def hand_back_freed_memory() -> bool:
    """Keep glibc's mmap threshold at MMAP_THRESHOLD: by default it rises to 32 MiB after the
    first large free, and the per-row arrays of a large file freed later stay in the heap,
    counted in the process's memory. False where the C library is not glibc."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def release_memory() -> None:
    """Collect cycles and hand back what Arrow's allocator and the heap hold unused (after a
    large job)."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None
