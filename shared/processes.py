"""Whether a process of this host still runs: what the sweeps of a dead process's leftovers
(temporary job folders, partial uploads) ask."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

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
