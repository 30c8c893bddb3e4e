"""A worker process hands large freed arrays back to the system."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# A 16 MiB free raises glibc's mmap threshold to 16 MiB; 8 MiB arrays then come from the heap,
# where a small array allocated after them keeps the heap from shrinking once they are freed.
# Arrays under the kept threshold (2 MiB) stay in the heap until release_memory trims it.
GROWN_AFTER_FREE = """
import sys
from pathlib import Path
import numpy as np
from shared.processes import hand_back_freed_memory, release_memory

def rss_mib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

if sys.argv[1] != "default":
    assert hand_back_freed_memory()
big = np.ones(2_000_000)
del big
before = rss_mib()
size = 1_000_000 if sys.argv[1] != "small" else 250_000
arrays = [np.ones(size) for _ in range(600_000_000 // 8 // size)]
later = [np.ones(100) for _ in range(1000)]
del arrays
kept = rss_mib() - before
release_memory()
print(kept, rss_mib() - before)
"""


def grown_mib(mode: str) -> tuple[int, int]:
    """MiB still counted after 600 MB of arrays are freed, and after release_memory."""
    run = subprocess.run(
        [sys.executable, "-c", GROWN_AFTER_FREE, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    kept, released = run.stdout.split()
    return int(kept), int(released)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_freed_arrays_leave_the_process_once_the_threshold_is_kept() -> None:
    assert grown_mib("default")[0] > 400  # 600 MB freed, still counted
    assert grown_mib("kept")[0] < 50  # 8 MiB arrays: mapped, handed back when freed
    kept, released = grown_mib("small")  # 2 MiB arrays: from the heap, reused
    assert kept > 400 and released < 50  # until release_memory trims it
