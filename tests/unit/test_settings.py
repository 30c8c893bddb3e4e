"""Settings: typed, read once, one clear line for a bad value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared.settings import REPO_ROOT, Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every setting at its default, whatever the surrounding environment says."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_defaults_are_the_embedded_services() -> None:
    settings = load_settings()
    assert settings.db_url == f"sqlite:///{REPO_ROOT / 'var' / 'fraudscore.db'}"
    assert settings.store_uri == (REPO_ROOT / "var" / "object_store").as_uri()
    assert str(settings.model_cache_dir) == "/tmp/model_cache"
    assert settings.broker_url == settings.result_backend == settings.redis_url


def test_environment_variables_are_read_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/fraud")
    monkeypatch.setenv("OBJECT_STORE_URI", "s3://fraud-detection-models/")
    monkeypatch.setenv("UPLOAD_MAX_BYTES", "1048576")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://broker:6379/1")
    settings = load_settings()
    assert settings.db_url == "postgresql://u@db/fraud"
    assert settings.store_uri == "s3://fraud-detection-models/"
    assert settings.upload_max_bytes == 1048576
    assert settings.broker_url == "redis://broker:6379/1"
    assert settings.result_backend == settings.redis_url


def test_visibility_timeout_outlasts_the_longest_job() -> None:
    settings = load_settings(job_soft_time_limit_s=100, job_time_limit_s=120)
    assert settings.visibility_timeout_s > settings.job_time_limit_s


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("UPLOAD_MAX_BYTES", "lots", "UPLOAD_MAX_BYTES"),
        ("OBJECT_STORE_URI", "ftp://host/x", "known schemes: file, s3"),
        ("DATABASE_URL", "not a url", "DATABASE_URL"),
        ("JOB_TIME_LIMIT_S", "10", "JOB_TIME_LIMIT_S must be greater"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
    ],
)
def test_an_invalid_value_fails_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert expected in message
    assert message.startswith("fraudscore: invalid setting")
    assert "\n" not in message


def test_production_requires_a_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSCORE_ENV", "production")
    with pytest.raises(SettingsError, match="SECRET_KEY is required"):
        load_settings()
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    assert load_settings().flask_secret_key == "s3cret"


@pytest.mark.parametrize(
    "entry", ["from api import create_app; create_app()", "import worker.celery_app"]
)
def test_a_process_started_with_a_bad_setting_prints_one_line_and_no_traceback(
    entry: str,
) -> None:
    env = {"PATH": "/usr/bin:/bin", "UPLOAD_MAX_BYTES": "-5"}
    result = subprocess.run(
        [sys.executable, "-c", entry], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == ["fraudscore: invalid setting UPLOAD_MAX_BYTES: Input should be greater than 0"]


def test_flower_never_starts_without_a_password() -> None:
    from worker.__main__ import celery_args

    for value in (None, "", "no-colon"):
        with pytest.raises(SystemExit, match="FLOWER_BASIC_AUTH=user:password"):
            celery_args("flower", load_settings(flower_basic_auth=value))
    args = celery_args("flower", load_settings(flower_basic_auth="ops:s3cret"))
    assert "--basic-auth=ops:s3cret" in args and "--address=127.0.0.1" in args
