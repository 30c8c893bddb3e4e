"""Object store registry and key hygiene."""

from __future__ import annotations

import pytest

from shared.settings import load_settings
from shared.storage import UnknownSchemeError, known_schemes, open_store
from shared.storage.base import clean_key


def test_known_schemes_are_file_and_s3() -> None:
    assert known_schemes() == ["file", "s3"]


@pytest.mark.parametrize("uri", ["ftp://host/path", "gs://bucket/", "no-scheme/path"])
def test_an_unknown_scheme_is_refused_with_the_known_ones_listed(uri: str) -> None:
    with pytest.raises(UnknownSchemeError, match="known schemes: file, s3"):
        open_store(uri, settings=load_settings())


def test_the_backend_is_chosen_by_scheme(tmp_path) -> None:
    settings = load_settings()
    assert open_store(tmp_path.as_uri(), settings=settings).scheme == "file"
    s3 = open_store("s3://fraud-detection-models/models/", settings=settings)
    assert (s3.scheme, s3.bucket, s3.prefix) == ("s3", "fraud-detection-models", "models/")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x", "a/../../x", "a\\b", ".."])
def test_keys_that_escape_the_store_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        clean_key(key)


def test_keys_are_normalised() -> None:
    assert clean_key("a//b/./c.csv") == "a/b/c.csv"
