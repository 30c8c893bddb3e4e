"""Process-wide logging set-up, called once by each entry point."""

from __future__ import annotations

import logging

from shared.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def configure_logging(settings: Settings) -> None:
    """Log to stderr at the configured level (idempotent)."""
    root = logging.getLogger()
    if not any(getattr(h, "_fraudscore", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._fraudscore = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(settings.log_level)
