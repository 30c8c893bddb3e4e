"""The reference_models registry: populate from model folders, query, record usage."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from shared.db.models import LIBRARY, ReferenceModel, utcnow
from shared.engine.bundle import METADATA_FILE, ArtifactError, mismatched_files, read_manifest
from shared.engine.matching import Match, ModelInfo, match_models

logger = logging.getLogger(__name__)

STORAGE_LOCAL = "local"
STORAGE_S3 = "s3"


@dataclass
class PopulateSummary:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            "=" * 48,
            "Reference model registry",
            "=" * 48,
            f"  added:   {len(self.added)}",
            f"  updated: {len(self.updated)}",
            f"  skipped: {len(self.skipped)} (unchanged)",
            f"  failed:  {len(self.failed)}",
        ]
        lines += [f"    - {name}: {reason}" for name, reason in self.failed]
        lines.append("=" * 48)
        return "\n".join(lines)


def model_folders(root: Path) -> list[Path]:
    """Model folders under root (those holding a manifest), by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "manifest.json").is_file())


def row_values(folder: Path) -> dict[str, Any]:
    """The registry columns for one model folder, after checking its files."""
    manifest = read_manifest(folder)
    checksums = {name: info["sha256"] for name, info in manifest.items()}
    bad = mismatched_files(folder, checksums)
    if bad:
        raise ArtifactError(f"files differ from the manifest: {', '.join(bad)}")
    meta = json.loads((folder / METADATA_FILE).read_text())
    return {
        "name": meta.get("name", folder.name),
        "version": str(meta.get("version", "1")),
        "columns": meta.get("columns", []),
        "column_roles": meta.get("roles", {}),
        "value_profile": meta.get("value_profile", {}),
        "metrics": {**meta.get("metrics", {}), "domain": meta.get("domain")},
        "storage_type": STORAGE_LOCAL,
        "artifact_uri": folder.resolve().as_uri() + "/",
        "file_checksums": checksums,
        "size_bytes": sum(int(info["size"]) for info in manifest.values()),
    }


def upsert(session: Session, values: dict[str, Any]) -> str:
    """Insert or update one row; 'added', 'updated' or 'skipped' (same files)."""
    row = session.scalars(
        select(ReferenceModel).where(
            ReferenceModel.owner == values.get("owner", LIBRARY),
            ReferenceModel.name == values["name"],
            ReferenceModel.version == values["version"],
        )
    ).one_or_none()
    if row is None:
        session.add(ReferenceModel(**values))
        return "added"
    if row.file_checksums == values["file_checksums"]:
        return "skipped"  # same files; a migrated row keeps pointing at S3
    for key, value in values.items():
        setattr(row, key, value)
    return "updated"


def populate(session: Session, root: Path) -> PopulateSummary:
    """Upsert every model folder under root; one bad folder does not stop the others."""
    summary = PopulateSummary()
    for folder in model_folders(root):
        try:
            with session.begin_nested():
                outcome = upsert(session, row_values(folder))
        except Exception as exc:
            logger.warning("cannot register %s: %s", folder.name, exc)
            summary.failed.append((folder.name, str(exc)))
            continue
        getattr(summary, outcome).append(folder.name)
    session.commit()
    return summary


def visible_to(owner: str) -> Any:
    """The condition for the models an owner's jobs may use and list: the library and their own."""
    return or_(ReferenceModel.owner == LIBRARY, ReferenceModel.owner == owner)


def get_model(session: Session, name: str, owner: str = LIBRARY) -> ReferenceModel | None:
    """The newest version of a model by name, among those `owner` sees (theirs first)."""
    rows = session.scalars(
        select(ReferenceModel).where(ReferenceModel.name == name, visible_to(owner))
    ).all()
    return max(rows, key=lambda r: (r.owner == owner, r.created_at, r.id)) if rows else None


def model_info(row: ReferenceModel) -> ModelInfo:
    """What matching needs of a registry row."""
    return ModelInfo(row.name, dict(row.column_roles), dict(row.value_profile), dict(row.metrics))


def find_best_match(
    session: Session,
    roles: dict[str, str],
    quantiles: dict[str, list[float]] | None = None,
    top_k: int = 3,
) -> list[Match]:
    """Registered models ranked for an upload (role -> column, feature quantiles), as scoring
    ranks them (shared.engine.matching), best first."""
    rows = session.scalars(
        select(ReferenceModel).where(ReferenceModel.owner == LIBRARY).order_by(ReferenceModel.name)
    ).all()
    return match_models([model_info(r) for r in rows], roles, quantiles or {})[:top_k]


def record_usage(session: Session, names: list[str], owner: str = LIBRARY) -> None:
    """Count one use of each named model, now."""
    if names:
        session.execute(
            update(ReferenceModel)
            .where(ReferenceModel.name.in_(names), visible_to(owner))
            .values(usage_count=ReferenceModel.usage_count + 1, last_used_at=utcnow())
        )
        session.commit()
