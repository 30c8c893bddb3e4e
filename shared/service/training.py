"""Run one training job: a team's labeled rows in, a team model registered for that owner out.

Like a scoring job (claim, heartbeat, cancel, failure reasons), and registered exactly once:
the registry row is inserted in the same transaction that marks the job succeeded, only while
this attempt still holds the job, so a killed or cancelled training leaves no model behind.
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from shared import states as S
from shared.db.models import Job, LabelSet, ReferenceModel, utcnow
from shared.db.session import rows_changed, session_scope
from shared.engine.bundle import ARTIFACT_FILES, MANIFEST_FILE
from shared.engine.pipeline import Cancelled
from shared.engine.team import WithoutTeams
from shared.errors import InputError
from shared.library.cache import RegistrySource
from shared.library.registry import STORAGE_LOCAL, STORAGE_S3, row_values
from shared.logs import job_context
from shared.service.keys import model_prefix
from shared.service.labels import TRAIN_LABEL, TrainingFile, read_label_set
from shared.service.runner import Claim, JobRunner, held_by, process_model_store, score_options
from shared.settings import Settings, get_settings
from shared.storage import ObjectNotFound, ObjectStore, open_store
from shared.training.team import train_team

logger = logging.getLogger(__name__)
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
STAGE_PREPARING, STAGE_TRAINING, STAGE_REGISTERING = "preparing", "training", "registering"


def run_training(job_id: str, settings: Settings | None = None) -> str:
    """Run the training job to a final state and return it (see run_job)."""
    with job_context(str(job_id)):
        return TrainingRunner(uuid.UUID(str(job_id)), settings or get_settings()).run()


class TrainingRunner(JobRunner):
    """One attempt at one training job."""

    doing = "training"

    def attempt_job(self, claim: Claim, folder: Path) -> str:
        store = open_store(settings=self.settings)
        name = str(claim.raw_options["name"])
        self.update(stage=STAGE_PREPARING, progress=5.0)
        data, label = self.training_file(store, claim, folder)
        self.check_held()
        self.update(stage=STAGE_TRAINING, progress=20.0)
        version = self.next_version(claim.owner, name)
        library = WithoutTeams(RegistrySource(self.settings, process_model_store()))
        options = score_options(claim.options, self.settings, reasons=False)
        result = train_team(data, f"{name}@{version}", folder / "models", library, label, options)
        self.check_held()
        self.update(stage=STAGE_REGISTERING, progress=90.0)
        return self.register(store, claim.owner, result.folder, version, result.metrics)

    def check_held(self) -> None:
        if not self.holds():
            raise Cancelled("cancelled")

    def training_file(
        self, store: ObjectStore, claim: Claim, folder: Path
    ) -> tuple[Path, str | None]:
        """The labeled CSV to train on, and its label column (None: found by name)."""
        if claim.input_uri:  # a labeled file sent to POST /api/v1/models
            return self.fetch(store, claim.input_uri, folder), claim.raw_options.get("label")
        target = folder / "labeled.csv"
        pooled = TrainingFile(target)
        try:
            for job_uri, sets in self.label_sets(claim.owner, str(claim.raw_options["schema"])):
                labels: dict[int, int] = {}
                for set_uri in sets:
                    labels.update(read_label_set(_read(store, set_uri)))
                own = folder / uuid.uuid4().hex
                own.mkdir()
                try:
                    local = self.fetch(store, job_uri, own)
                except InputError:  # retention removed that job's upload: its labels go too
                    logger.warning("job %s: a labeled job's input is gone; skipped", self.job_id)
                    continue
                pooled.add(local, labels)
                local.unlink()
        finally:
            pooled.close()
        if pooled.rows == 0:
            raise InputError("none of the labeled jobs' files is still stored; nothing to train on")
        return target, TRAIN_LABEL

    def label_sets(self, owner: str, schema: str) -> list[tuple[str, list[str]]]:
        """(job input URI, its label sets' URIs oldest first) for the owner's jobs of a schema."""
        with session_scope(self.settings.db_url) as session:
            rows = session.execute(
                select(Job.input_uri, LabelSet.uri)
                .join(Job, Job.id == LabelSet.job_id)
                .where(LabelSet.owner == owner, LabelSet.schema == schema, Job.owner == owner)
                .order_by(Job.created_at, LabelSet.created_at)
            ).all()
        grouped: dict[str, list[str]] = {}
        for job_uri, set_uri in rows:
            grouped.setdefault(job_uri, []).append(set_uri)
        return list(grouped.items())

    def next_version(self, owner: str, name: str) -> int:
        with session_scope(self.settings.db_url) as session:
            rows = session.scalars(
                select(ReferenceModel.version).where(
                    ReferenceModel.owner == owner,
                    ReferenceModel.name.startswith(f"{name}@", autoescape=True),
                )
            ).all()
        versions = [int(v) for v in rows if str(v).isdigit()]
        return max(versions, default=0) + 1

    def register(
        self, store: ObjectStore, owner: str, folder: Path, version: int, metrics: dict[str, Any]
    ) -> str:
        """Upload the model's files, then in one transaction insert its registry row and mark
        the job succeeded (neither if the attempt lost the job)."""
        prefix = model_prefix(owner, folder.name)
        for file_name in (*ARTIFACT_FILES, MANIFEST_FILE):
            store.put_file(prefix + file_name, folder / file_name)
        values = row_values(folder)
        values.update(
            owner=owner,
            version=str(version),
            storage_type=STORAGE_S3 if store.scheme == STORAGE_S3 else STORAGE_LOCAL,
            artifact_uri=store.uri_for(prefix),
        )
        stats = {"model": folder.name, "version": version, "metrics": metrics}
        with session_scope(self.settings.db_url) as session:
            held = rows_changed(
                session,
                update(Job)
                .where(*held_by(self.job_id, self.attempt))
                .values(
                    state=S.SUCCEEDED,
                    stage=None,
                    progress=100.0,
                    stats=stats,
                    rows_total=metrics["rows"],
                    rows_done=metrics["rows"],
                    finished_at=utcnow(),
                    heartbeat_at=None,
                ),
            )
            if not held:
                session.rollback()
                _remove(store, prefix)
                return self.cancelled()
            session.add(ReferenceModel(**values))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                _remove(store, prefix)
                raise InputError(
                    f"{folder.name} was registered by another training meanwhile; train again"
                ) from None
        logger.info("job %s: registered team model %s for %s", self.job_id, folder.name, owner)
        return S.SUCCEEDED


def _read(store: ObjectStore, uri: str) -> bytes:
    key = store.key_of(uri)
    if key is None:
        raise InputError("a label set is not in this service's object store")
    try:
        with store.open(key) as stream:
            return stream.read()
    except ObjectNotFound:
        raise InputError("a stored label set is missing from the object store") from None


def _remove(store: ObjectStore, prefix: str) -> None:
    for item in store.list(prefix):
        store.delete(item.key)
