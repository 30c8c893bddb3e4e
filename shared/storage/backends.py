"""Scheme -> backend registry; backends are imported only when used."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.storage.base import ObjectStore

_BACKENDS: dict[str, str] = {
    "file": "shared.storage.file:FileObjectStore",
    "s3": "shared.storage.s3:S3ObjectStore",
}


class UnknownSchemeError(ValueError):
    """The URI names no known object store backend."""


def known_schemes() -> list[str]:
    return sorted(_BACKENDS)


def scheme_of(uri: str) -> str:
    """The URI's scheme, or UnknownSchemeError listing the known ones."""
    scheme = urlsplit(uri).scheme.lower()
    if scheme not in _BACKENDS:
        raise UnknownSchemeError(
            f"unknown object store scheme {scheme or '(none)'!r} in {uri!r}; "
            f"known schemes: {', '.join(known_schemes())}"
        )
    return scheme


def open_store(uri: str | None = None, settings: Settings | None = None) -> ObjectStore:
    """The object store for `uri` (default: the configured one)."""
    if settings is None:
        from shared.settings import get_settings

        settings = get_settings()
    uri = uri or settings.store_uri
    module_name, class_name = _BACKENDS[scheme_of(uri)].split(":")
    backend = getattr(import_module(module_name), class_name)
    return backend(uri, settings)
