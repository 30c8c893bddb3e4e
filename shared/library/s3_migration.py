"""Move reference-model artifacts between local folders and S3, keeping the registry truthful.

A registry row switches storage only after every file of its model is in place and verified,
so an interrupted run never leaves a row pointing at an incomplete model; re-running is safe.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import ReferenceModel
from shared.engine.bundle import sha256_file
from shared.library.registry import STORAGE_LOCAL, STORAGE_S3
from shared.settings import Settings
from shared.storage import ObjectNotFound, ObjectStore, open_store

logger = logging.getLogger(__name__)
GB = 1024**3


@dataclass
class Prices:
    """USD prices: S3 Standard storage per GB-month, and PUT/GET requests per 1000."""

    storage_gb_month: float = 0.023
    put_per_1000: float = 0.005
    get_per_1000: float = 0.0004


@dataclass
class Estimate:
    models: int
    files: int
    size_bytes: int
    monthly_storage_usd: float
    upload_usd: float
    yearly_usd: float

    def render(self) -> str:
        return "\n".join(
            [
                "S3 migration estimate",
                f"  models to migrate:    {self.models}",
                f"  files:                {self.files}",
                f"  total size:           {self.size_bytes / 1024**2:.2f} MiB",
                f"  monthly storage cost: ${self.monthly_storage_usd:.4f}",
                f"  one-time upload cost: ${self.upload_usd:.4f}",
                f"  yearly cost:          ${self.yearly_usd:.4f}",
            ]
        )


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def render(self, verb: str) -> str:
        lines = [
            "=" * 48,
            f"{verb}: {len(self.done)}",
            f"skipped: {len(self.skipped)}",
            f"failed: {len(self.failed)}",
        ]
        lines += [f"  - {name}: {reason}" for name, reason in self.failed]
        return "\n".join([*lines, "=" * 48])


def rows_in(session: Session, storage: str, outcome: Outcome | None = None) -> list[ReferenceModel]:
    """Registry rows kept in `storage`, by name; the others are counted as skipped."""
    rows = session.scalars(select(ReferenceModel).order_by(ReferenceModel.name)).all()
    if outcome is not None:
        outcome.skipped += [r.name for r in rows if r.storage_type != storage]
    return [r for r in rows if r.storage_type == storage]


def estimate(session: Session, prices: Prices) -> Estimate:
    rows = rows_in(session, STORAGE_LOCAL)
    size = sum(r.size_bytes for r in rows)
    files = sum(len(r.file_checksums) for r in rows)
    monthly = size / GB * prices.storage_gb_month
    upload = files / 1000 * prices.put_per_1000
    verify = files / 1000 * prices.get_per_1000
    return Estimate(
        len(rows), files, size, monthly, upload + verify, monthly * 12 + upload + verify
    )


def s3_uri(bucket: str, prefix: str, row: ReferenceModel) -> str:
    return f"s3://{bucket}/{prefix.strip('/')}/{row.name}/{row.version}/"


def local_folder(row: ReferenceModel) -> Path:
    return Path(unquote(urlsplit(row.artifact_uri).path))


def _stream_sha256(store: ObjectStore, key: str) -> str:
    digest = hashlib.sha256()
    with store.open(key) as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def migrate(
    session: Session,
    settings: Settings,
    bucket: str,
    prefix: str = "library",
    dry_run: bool = False,
    report: Callable[[str], None] = print,
) -> Outcome:
    """Upload each local model's files, verify each, then switch its row to S3."""
    outcome = Outcome()
    for row in rows_in(session, STORAGE_LOCAL, outcome):
        source = local_folder(row)
        target_uri = s3_uri(bucket, prefix, row)
        if dry_run:
            for name in sorted(row.file_checksums):
                size = (source / name).stat().st_size if (source / name).exists() else 0
                report(f"would upload {source / name} -> {target_uri}{name} ({size} bytes)")
            outcome.done.append(row.name)  # counted as the real run would count it
            continue
        try:
            target = open_store(target_uri, settings=settings)
            for name, expected in sorted(row.file_checksums.items()):
                if sha256_file(source / name) != expected:
                    raise RuntimeError(f"local {name} does not match its recorded sha256")
                target.put_file(name, source / name)
                if _stream_sha256(target, name) != expected:
                    raise RuntimeError(f"uploaded {name} does not match its sha256")
        except Exception as exc:
            session.rollback()
            outcome.failed.append((row.name, str(exc)))
            report(f"FAILED   {row.name}: {exc}")
            continue
        row.storage_type, row.artifact_uri = STORAGE_S3, target_uri
        session.commit()
        outcome.done.append(row.name)
        report(f"migrated {row.name} -> {target_uri} ({row.size_bytes} bytes)")
    return outcome


def verify(session: Session, settings: Settings, report: Callable[[str], None] = print) -> Outcome:
    """Every S3 row's files exist with the recorded sha256 and size."""
    outcome = Outcome()
    for row in rows_in(session, STORAGE_S3, outcome):
        store = open_store(row.artifact_uri, settings=settings)
        problems = []
        total = 0
        for name, expected in sorted(row.file_checksums.items()):
            try:
                total += store.size(name)
                if _stream_sha256(store, name) != expected:
                    problems.append(f"{name}: sha256 differs")
            except ObjectNotFound:
                problems.append(f"{name}: missing")
        if not problems and total != row.size_bytes:
            problems.append(f"total size {total} != recorded {row.size_bytes}")
        if problems:
            outcome.failed.append((row.name, "; ".join(problems)))
            report(f"BAD      {row.name}: {'; '.join(problems)}")
        else:
            outcome.done.append(row.name)
            report(f"ok       {row.name}")
    return outcome


def rollback(
    session: Session, settings: Settings, models_dir: Path, report: Callable[[str], None] = print
) -> Outcome:
    """Point S3 rows back at local folders, re-downloading whatever is missing or wrong there."""
    outcome = Outcome()
    for row in rows_in(session, STORAGE_S3, outcome):
        folder = Path(models_dir) / row.name
        try:
            source = open_store(row.artifact_uri, settings=settings)
            local = open_store(folder.resolve().as_uri(), settings=settings)
            fetched = 0
            for name, expected in sorted(row.file_checksums.items()):
                path = folder / name
                if path.is_file() and sha256_file(path) == expected:
                    continue
                with source.open(name) as stream:
                    local.put_stream(name, stream)
                if sha256_file(path) != expected:
                    raise RuntimeError(f"downloaded {name} does not match its sha256")
                fetched += 1
        except Exception as exc:
            session.rollback()
            outcome.failed.append((row.name, str(exc)))
            report(f"FAILED   {row.name}: {exc}")
            continue
        row.storage_type, row.artifact_uri = STORAGE_LOCAL, folder.resolve().as_uri() + "/"
        session.commit()
        outcome.done.append(row.name)
        report(f"local    {row.name} ({fetched} files re-downloaded)")
    return outcome
