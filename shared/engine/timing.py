"""Busy seconds per stage of a scoring run."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
# The stages whose busy seconds a run reports (besides one "model:NAME" entry per model).
TIMED_STAGES = (
    "read",
    "features",
    "matching",
    "anomaly",
    "file_model",
    "calibration",
    "reasons",
    "write",
)


class Timer:
    """Seconds per stage; stages run on pool threads add their busy time (so they may overlap)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[stage] += time.perf_counter() - started

    def timed(self, stage: str, fn: Callable[P, T]) -> Callable[P, T]:
        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            with self(stage):
                return fn(*args, **kwargs)

        return run
