"""A worker process hands large freed arrays back to the system."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# A 16 MiB free raises glibc's mmap threshold to 16 MiB; 2 MiB arrays then come from the heap,
# where a small array allocated after them keeps the heap from shrinking once they are freed.
GROWN_AFTER_FREE = """
import sys
from pathlib import Path
import numpy as np
from shared.processes import hand_back_freed_memory

def rss_mib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

if sys.argv[1] == "kept":
    assert hand_back_freed_memory()
big = np.ones(2_000_000)
del big
before = rss_mib()
arrays = [np.ones(250_000) for _ in range(300)]
later = [np.ones(100) for _ in range(1000)]
del arrays
print(rss_mib() - before)
"""


def grown_mib(mode: str) -> int:
    run = subprocess.run(
        [sys.executable, "-c", GROWN_AFTER_FREE, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(run.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_freed_arrays_leave_the_process_once_the_threshold_is_kept() -> None:
    assert grown_mib("default") > 400  # 600 MB freed, still counted
    assert grown_mib("kept") < 50
