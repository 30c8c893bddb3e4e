"""Scheme -> backend registry (shared/uris.py); backends are imported only when used."""

from __future__ import annotations

from importlib import import_module

from shared.settings import Settings, get_settings
from shared.storage.base import ObjectStore
from shared.uris import BACKENDS, UnknownSchemeError, known_schemes, scheme_of

__all__ = ["UnknownSchemeError", "known_schemes", "open_store", "scheme_of"]


def open_store(uri: str | None = None, settings: Settings | None = None) -> ObjectStore:
    """The object store for `uri` (default: the configured one)."""
    settings = settings or get_settings()
    uri = uri or settings.store_uri
    module_name, class_name = BACKENDS[scheme_of(uri)].split(":")
    backend: type[ObjectStore] = getattr(import_module(module_name), class_name)
    return backend(uri, settings)  # type: ignore[call-arg]
