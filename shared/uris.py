"""Object store URI schemes and the backend each names (a leaf: settings and storage both read
it, so neither imports the other to check a URI)."""

from __future__ import annotations

from urllib.parse import urlsplit

BACKENDS: dict[str, str] = {
    "file": "shared.storage.file:FileObjectStore",
    "s3": "shared.storage.s3:S3ObjectStore",
}


class UnknownSchemeError(ValueError):
    """The URI names no known object store backend."""


def known_schemes() -> list[str]:
    return sorted(BACKENDS)


def scheme_of(uri: str) -> str:
    """The URI's scheme, or UnknownSchemeError listing the known ones."""
    scheme = urlsplit(uri).scheme.lower()
    if scheme not in BACKENDS:
        raise UnknownSchemeError(
            f"unknown object store scheme {scheme or '(none)'!r} in {uri!r}; "
            f"known schemes: {', '.join(known_schemes())}"
        )
    return scheme
