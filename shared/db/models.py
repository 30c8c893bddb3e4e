"""SQLAlchemy models: reference models, jobs, API tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared import states

JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JsonType, list[Any]: JsonType}


LIBRARY = ""  # the owner of the shared reference library's models


class ReferenceModel(Base):
    """One trained model: what it expects, how good it is, where its files are. The shared
    library's belong to no one (`owner` ""); a team model to the owner whose labels trained it,
    and only that owner's jobs see it."""

    __tablename__ = "reference_models"
    __table_args__ = (
        UniqueConstraint("owner", "name", "version", name="uq_reference_models_owner_name_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), default=LIBRARY, index=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(64), default="1")
    columns: Mapped[list[Any]] = mapped_column(default=list)
    column_roles: Mapped[dict[str, Any]] = mapped_column(default=dict)
    value_profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    storage_type: Mapped[str] = mapped_column(String(16), default="local")
    artifact_uri: Mapped[str] = mapped_column(Text)
    file_checksums: Mapped[dict[str, Any]] = mapped_column(default=dict)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    usage_count: Mapped[int] = mapped_column(Integer, default=0)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


JOB_SCORE, JOB_TRAIN = "score", "train"


class Job(Base):
    """One job, from upload to result: scoring a file, or training a team model."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idem"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(16), default=JOB_SCORE)
    state: Mapped[str] = mapped_column(String(16), default=states.QUEUED, index=True)
    stage: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    input_uri: Mapped[str] = mapped_column(Text)
    output_uri: Mapped[str | None] = mapped_column(Text)
    error_uri: Mapped[str | None] = mapped_column(Text)
    rows_total: Mapped[int | None] = mapped_column(BigInteger)
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_failed: Mapped[int] = mapped_column(BigInteger, default=0)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    methods: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    error_message: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set when the running attempt cut the file into parts for many workers: how many.
    parts: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Renewed every HEARTBEAT_S while an attempt runs; a stale one means the attempt is gone.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When retention deleted the job's upload and results (RETENTION_DAYS after it finished).
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class LabelSet(Base):
    """One file of confirmed outcomes for a scored job: its rows' labels, stored in the object
    store as `row_number,label`."""

    __tablename__ = "label_sets"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    schema: Mapped[str] = mapped_column(String(64), index=True)  # the job input's columns' hash
    uri: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
    positives: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OwnerSettings(Base):
    """An owner's own defaults for their jobs (set with PUT /api/v1/settings)."""

    __tablename__ = "owner_settings"

    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    expected_fraud_rate: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class ApiToken(Base):
    """A bearer token, stored only as its sha256."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
