"""Object stores chosen by URI scheme (file://, s3://)."""

from shared.storage.backends import UnknownSchemeError, known_schemes, open_store
from shared.storage.base import ObjectInfo, ObjectNotFound, ObjectStore, StoreNotReady

__all__ = [
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "StoreNotReady",
    "UnknownSchemeError",
    "known_schemes",
    "open_store",
]
