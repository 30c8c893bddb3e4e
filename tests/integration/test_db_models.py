"""The models store and constrain what they should, on PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared import states
from shared.db import ApiToken, Job, ReferenceModel

pytestmark = pytest.mark.integration


def test_a_reference_model_keeps_its_json_metadata(db: Session) -> None:
    model = ReferenceModel(
        name="card_present_fr",
        artifact_uri="file:///var/automl_models/card_present_fr/",
        columns=["montant", "horodatage"],
        column_roles={"montant": "amount", "horodatage": "timestamp"},
        value_profile={"amount": {"q50": 42.0}},
        metrics={"roc_auc": 0.97},
        file_checksums={"model.ubj": "ab" * 32},
        size_bytes=1234,
    )
    db.add(model)
    db.commit()
    db.expire_all()
    stored = db.scalars(
        select(ReferenceModel).where(ReferenceModel.name == "card_present_fr")
    ).one()
    assert stored.column_roles["montant"] == "amount"
    assert stored.metrics == {"roc_auc": 0.97}
    assert (stored.storage_type, stored.usage_count, stored.version) == ("local", 0, "1")
    assert stored.created_at.tzinfo is not None


def test_name_and_version_are_unique(db: Session) -> None:
    db.add(ReferenceModel(name="m", artifact_uri="file:///a/"))
    db.commit()
    db.add(ReferenceModel(name="m", artifact_uri="file:///b/"))
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()


def test_a_job_starts_queued_with_a_uuid(db: Session) -> None:
    job = Job(owner="alice", input_uri="s3://b/uploads/alice/x.csv")
    db.add(job)
    db.commit()
    assert job.state == states.QUEUED and job.id is not None
    assert (job.rows_done, job.rows_failed, job.attempts, job.progress) == (0, 0, 0, 0.0)


def test_an_idempotency_key_is_unique_per_owner(db: Session) -> None:
    db.add_all(
        [
            Job(owner="a", input_uri="x", idempotency_key="k"),
            Job(owner="b", input_uri="x", idempotency_key="k"),
        ]
    )
    db.commit()
    db.add(Job(owner="a", input_uri="y", idempotency_key="k"))
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()


def test_tokens_are_stored_as_unique_hashes(db: Session) -> None:
    digest = hashlib.sha256(b"token").hexdigest()
    db.add(ApiToken(owner="alice", token_sha256=digest))
    db.commit()
    db.add(ApiToken(owner="bob", token_sha256=digest))
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()


def test_a_kept_token_is_reused_while_live_and_replaced_once_revoked(
    db: Session, tmp_path: Path
) -> None:
    from shared.service.auth import kept_token, owner_for, revoke

    path = tmp_path / "var" / "dev_token"
    first = kept_token(db, path, "dev")
    assert kept_token(db, path, "dev") == first  # a restart: the same token
    assert path.read_text().strip() == first and path.stat().st_mode & 0o077 == 0
    stored = db.scalars(select(ApiToken.token_sha256).where(ApiToken.owner == "dev")).all()
    assert stored == [hashlib.sha256(first.encode()).hexdigest()]  # only the hash is stored
    revoke(db, first)
    second = kept_token(db, path, "dev")
    assert second != first and owner_for(db, second) == "dev"
    assert kept_token(db, path, "someone-else") not in (first, second)  # not another's token
