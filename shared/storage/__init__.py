"""Object stores chosen by URI scheme (file://, s3://)."""

from shared.storage.base import ObjectInfo, ObjectNotFound, ObjectStore
from shared.storage.registry import UnknownSchemeError, known_schemes, open_store

__all__ = [
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "UnknownSchemeError",
    "known_schemes",
    "open_store",
]
