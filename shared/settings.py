"""The one settings object: every environment variable is read here, once, typed."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import defaults as D
from shared.uris import scheme_of

REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(SystemExit):
    """A missing or invalid setting; uncaught, it exits with one line and no traceback."""


class Settings(BaseSettings):
    """Typed view of the environment; field names are the variable names."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Deployment mode: production refuses insecure defaults.
    fraudscore_env: Literal["development", "production", "test"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    # Local state for the embedded defaults (SQLite file, file:// object store, redis socket).
    var_dir: Path = REPO_ROOT / "var"

    # Metadata database (PostgreSQL in production, SQLite file when unset).
    database_url: str = ""

    # Broker and result backend; both default to REDIS_URL.
    redis_url: str = "redis://127.0.0.1:6379/0"
    celery_broker_url: str = ""
    celery_result_backend: str = ""

    # Object store: s3://bucket/prefix/ or file:///abs/path (default: a folder under var/).
    object_store_uri: str = ""
    # A non-AWS S3 endpoint as the servers reach it (MinIO...); boto3's own AWS_ENDPOINT_URL
    # is read when this is unset.
    s3_endpoint_url: str | None = None
    # The same store as clients reach it, for presigned download URLs (`?redirect=1`); unset
    # while S3_ENDPOINT_URL is set, downloads are streamed by the API instead.
    s3_public_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_multipart_threshold: int = Field(default=16 * 1024 * 1024, ge=5 * 1024 * 1024)
    presigned_url_ttl_s: int = Field(default=900, gt=0)

    # Worker-local model cache.
    model_cache_dir: Path = Path("/tmp/model_cache")

    # Reference library: where AutoML writes models (default var/automl_models), and its size.
    automl_models_dir: Path | None = None
    reference_library_size: int = Field(default=40, gt=0, le=200)
    reference_rows_scale: float = Field(default=1.0, gt=0, le=10)

    # Scoring: models per ensemble, risk bands, rows per chunk.
    top_k: int = Field(default=D.TOP_K, gt=0, le=20)
    risk_high_threshold: float = Field(default=D.HIGH_THRESHOLD, ge=0, le=1)
    risk_medium_threshold: float = Field(default=D.MEDIUM_THRESHOLD, ge=0, le=1)
    # At least this riskiest share of rows is `high` when fewer reach RISK_HIGH_THRESHOLD
    # (0: off); a job that sets high_threshold or alert_rate decides for itself.
    risk_min_high_share: float = Field(default=D.MIN_HIGH_SHARE, ge=0, le=0.5)
    # At least this riskiest share is `medium` or above when fewer reach RISK_MEDIUM_THRESHOLD
    # (0: off); a job that sets medium_threshold decides for itself.
    risk_min_medium_share: float = Field(default=D.MIN_MEDIUM_SHARE, ge=0, le=0.5)
    score_chunk_rows: int = Field(default=D.CHUNK_ROWS, gt=0)
    # A worker cuts a file of more rows than this into parts of about this many, scored by
    # every worker at once (whole chunks, so parts are at least one chunk).
    score_part_rows: int = Field(default=D.PART_ROWS, gt=0)
    # Threads per worker process for scoring (unset: the machine's cores / WORKER_CONCURRENCY).
    score_threads: int | None = Field(default=None, gt=0)

    # Web API.
    secret_key: str = ""
    upload_max_bytes: int = Field(default=2 * 1024**3, gt=0)
    # The API sweeps uploads whose writer died (untouched this long) when it starts.
    partial_upload_max_age_s: float = Field(default=3600.0, ge=0)
    # The API lets go of a request whose body sends nothing for this long (upload deleted).
    request_idle_s: float = Field(default=60.0, gt=0)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=5000, gt=0, lt=65536)
    # The address clients reach the API at, for the URLs answers carry (never the request's
    # Host header); unset: http://API_HOST:API_PORT (127.0.0.1 for 0.0.0.0).
    public_url: str | None = None
    # `make run` restarts an API that has not answered /healthz for this long (a wedged process).
    api_liveness_s: float = Field(default=30.0, ge=2)

    # Jobs: Celery soft/hard time limits in seconds.
    job_soft_time_limit_s: int = Field(default=3600, gt=0)
    job_time_limit_s: int = Field(default=3900, gt=0)
    worker_concurrency: int = Field(default=2, gt=0)
    # Recovery: a running attempt renews its heartbeat every HEARTBEAT_S; the reconciler (in
    # every worker, each SWEEP_S) re-queues a running job whose heartbeat is older than
    # STALE_AFTER_S and a queued job the broker lost (after QUEUED_GRACE_S), and fails a job
    # after MAX_ATTEMPTS attempts that each lost their worker.
    heartbeat_s: float = Field(default=5.0, gt=0)
    stale_after_s: float = Field(default=30.0, gt=0)
    sweep_s: float = Field(default=10.0, gt=0)
    queued_grace_s: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, gt=0)
    # Uploads and results of jobs finished longer ago than this are deleted (0: kept forever).
    retention_days: float = Field(default=30.0, ge=0)

    # Flower (ops dashboard): "user:password" enables basic auth.
    flower_port: int = Field(default=5555, gt=0, lt=65536)
    flower_basic_auth: str | None = None

    # Readiness probe: seconds to wait for each dependency.
    readiness_timeout_s: float = Field(default=2.0, gt=0)

    @field_validator("object_store_uri")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value:
            scheme_of(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        if value and "://" not in value:
            raise ValueError("expected a SQLAlchemy URL such as postgresql://user@host/db")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.stale_after_s <= 2 * self.heartbeat_s:
            raise ValueError("STALE_AFTER_S must exceed twice HEARTBEAT_S")
        if self.job_time_limit_s <= self.job_soft_time_limit_s:
            raise ValueError("JOB_TIME_LIMIT_S must be greater than JOB_SOFT_TIME_LIMIT_S")
        thresholds = ("RISK_MEDIUM_THRESHOLD", "RISK_HIGH_THRESHOLD")
        D.check_order(self.risk_medium_threshold, self.risk_high_threshold, thresholds)
        if self.fraudscore_env == "production" and not self.secret_key:
            raise ValueError("SECRET_KEY is required when FRAUDSCORE_ENV=production")
        return self

    @property
    def threads(self) -> int:
        """Scoring threads per worker process."""
        if self.score_threads is not None:
            return self.score_threads
        return max(1, (os.cpu_count() or 1) // self.worker_concurrency)

    @property
    def db_url(self) -> str:
        """DATABASE_URL, or the embedded SQLite file under var/."""
        return self.database_url or f"sqlite:///{self.var_dir / 'fraudscore.db'}"

    @property
    def store_uri(self) -> str:
        """OBJECT_STORE_URI, or the embedded folder under var/."""
        return self.object_store_uri or (self.var_dir / "object_store").as_uri()

    @property
    def models_dir(self) -> Path:
        """AUTOML_MODELS_DIR, or var/automl_models."""
        return self.automl_models_dir or self.var_dir / "automl_models"

    @property
    def base_url(self) -> str:
        """PUBLIC_URL, or the address the API listens on."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::", "") else self.api_host
        return f"http://{host}:{self.api_port}"

    @property
    def broker_url(self) -> str:
        return self.celery_broker_url or self.redis_url

    @property
    def result_backend(self) -> str:
        return self.celery_result_backend or self.redis_url

    @property
    def visibility_timeout_s(self) -> int:
        """Broker redelivery delay: longer than the longest job, or jobs run twice."""
        return self.job_time_limit_s * 2

    @property
    def flask_secret_key(self) -> str:
        return self.secret_key or "dev-insecure-secret-key"


def _one_line(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        name = ".".join(str(p) for p in item["loc"]).upper() or "settings"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if item["loc"] else message)
    return "fraudscore: invalid setting " + "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment plus overrides; one-line SettingsError if invalid."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
