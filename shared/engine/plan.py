"""The fitted plan: everything a worker needs to score any block of one file exactly as the
worker that fitted it, frozen, and saved without pickle.

A saved plan is one zip file (docs/pipeline.md, "The fitted plan on disk"):
`plan.json` (the layout, options, matched models by name and sha256, weights, thresholds and
the scalars of each fitted part), `arrays/NAME.npy` (numpy's own format, written and read with
allow_pickle=False) and `models/NAME.ubj` (XGBoost's own format: the isolation forest and the
file model). Reference models are not copied: they are loaded from the library and their
checksums compared with the plan's.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shared.engine.adapt import FileModel
from shared.engine.anomaly import FittedDetector
from shared.engine.blend import Blend
from shared.engine.bundle import ModelBundle
from shared.engine.columns import ExtraColumns
from shared.engine.csvio import CsvFormat
from shared.engine.matching import Match, ModelInfo
from shared.engine.options import ScoreOptions
from shared.engine.reasons import Explainer
from shared.engine.roles import RoleMap
from shared.engine.team import TeamLead
from shared.engine.timeparse import TimeFormat
from shared.engine.weighting import Weights
from shared.errors import InputError

PLAN_VERSION = 2
PLAN_JSON = "plan.json"


class ModelSource(Protocol):
    """Where reference models come from: the registry and the model store."""

    def models(self) -> list[ModelInfo]: ...

    def load(self, name: str) -> ModelBundle: ...

    def record_usage(self, names: list[str]) -> None: ...


class PlanError(InputError):
    """A saved plan cannot be used: another format version, or a model that changed."""


@dataclass(frozen=True, eq=False)
class Layout:
    """What profiling decided: format, roles, time format, and the columns the passes read."""

    fmt: CsvFormat
    roles: RoleMap
    time_format: TimeFormat | None
    extra: ExtraColumns
    columns: list[str]  # read by both passes, in file order
    out_columns: list[str]  # copied to the output

    def state(self) -> dict[str, Any]:
        fmt = self.fmt
        return {
            "format": {
                "name": fmt.path.name,
                "gzip": fmt.gzip,
                "encoding": fmt.encoding,
                "delimiter": fmt.delimiter,
                "columns": list(fmt.columns),
                "fallback": fmt.fallback,
            },
            "roles": asdict(self.roles),
            "time_format": asdict(self.time_format) if self.time_format else None,
            "extra": asdict(self.extra),
            "columns": self.columns,
            "out_columns": self.out_columns,
        }

    @classmethod
    def from_state(cls, meta: dict[str, Any], path: Path) -> Layout:
        f = meta["format"]
        fmt = CsvFormat(
            path, f["gzip"], f["encoding"], f["delimiter"], tuple(f["columns"]), f["fallback"]
        )
        roles = RoleMap(**{**meta["roles"], "date_parts": tuple(meta["roles"]["date_parts"])})
        extra = dict(meta["extra"])
        extra["dates"] = {c: _time_format(t) for c, t in extra["dates"].items()}
        time_format = _time_format(meta["time_format"]) if meta["time_format"] else None
        return cls(
            fmt, roles, time_format, ExtraColumns(**extra), meta["columns"], meta["out_columns"]
        )


@dataclass(frozen=True)
class Thresholds:
    """The risk levels' lower bounds, and where each came from."""

    medium: float
    high: float
    high_from: str = "threshold"  # or "alert budget", "riskiest share"
    medium_from: str = "threshold"  # or "riskiest share"

    def levels(self, p: np.ndarray) -> np.ndarray:
        """Each probability's level: 0 low, 1 medium, 2 high."""
        return (p >= self.medium).astype(np.int8) + (p >= self.high)


@dataclass(frozen=True, eq=False)
class FittedPlan:
    """Roles and formats, the matched models and their weights, the fitted anomaly detector,
    the blend and the file model, the risk thresholds and the base rate."""

    layout: Layout
    options: ScoreOptions
    matches: tuple[Match, ...]
    bundles: tuple[ModelBundle, ...]
    weights: Weights
    base_rate: float  # the matched models' training fraud rate, by weight
    anomaly_names: tuple[str, ...] = ()
    detector: FittedDetector | None = None
    blend: Blend | None = None
    file_model: FileModel | None = None
    thresholds: Thresholds = field(default_factory=lambda: Thresholds(0.0, 1.0))
    model_reasons: Explainer | None = None  # over the reference models' features
    file_reasons: Explainer | None = None  # over the anomaly inputs (file model, detector)
    team: TeamLead | None = None  # the team's own model, where one matched: it leads
    # The probability level: a shift in log-odds (to a stated rate), and where it came from
    # ("estimated" from the references and the file, "team labels", "stated").
    level_shift: float = 0.0
    level_from: str = "estimated"

    def save(self, path: Path) -> None:
        """Write the plan to one zip file (whole, then renamed into place)."""
        arrays: dict[str, np.ndarray] = {}
        blobs: dict[str, bytes] = {}
        meta = self._state(arrays, blobs)
        path = Path(path)
        tmp = path.with_name(path.name + ".part")
        with zipfile.ZipFile(tmp, "w") as archive:
            archive.writestr(PLAN_JSON, json.dumps(meta, indent=1))
            for name, values in arrays.items():
                buffer = io.BytesIO()
                np.save(buffer, values, allow_pickle=False)
                archive.writestr(f"arrays/{name}.npy", buffer.getvalue())
            for name, raw in blobs.items():
                archive.writestr(f"models/{name}", raw)
        os.replace(tmp, path)

    def _state(self, arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "layout": self.layout.state(),
            "options": asdict(self.options),
            "matches": [asdict(m) for m in self.matches],
            "models": [{"name": b.name, "sha256": b.checksums} for b in self.bundles],
            "weights": asdict(self.weights),
            "base_rate": self.base_rate,
            "anomaly_names": list(self.anomaly_names),
            "detector": self.detector.state("detector", arrays, blobs) if self.detector else None,
            "blend": self.blend.state("blend", arrays) if self.blend else None,
            "file_model": (
                self.file_model.state("file_model", arrays, blobs) if self.file_model else None
            ),
            "thresholds": asdict(self.thresholds),
            "model_reasons": (
                self.model_reasons.state("model_reasons", arrays) if self.model_reasons else None
            ),
            "file_reasons": (
                self.file_reasons.state("file_reasons", arrays) if self.file_reasons else None
            ),
            "team": self.team.state("team", arrays) if self.team else None,
            "level": {"shift": self.level_shift, "from": self.level_from},
        }

    @classmethod
    def load(cls, path: Path, source: ModelSource, csv_path: Path) -> FittedPlan:
        """A saved plan, to score `csv_path`; its reference models loaded from `source`."""
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read(PLAN_JSON))
            if meta.get("version") != PLAN_VERSION:
                raise PlanError(f"plan format {meta.get('version')} is not {PLAN_VERSION}")
            arrays, blobs = {}, {}
            for item in archive.namelist():
                if item.startswith("arrays/"):
                    raw = io.BytesIO(archive.read(item))
                    arrays[item[len("arrays/") : -len(".npy")]] = np.load(raw, allow_pickle=False)
                elif item.startswith("models/"):
                    blobs[item[len("models/") :]] = archive.read(item)
        return cls._from_state(meta, arrays, blobs, source, Path(csv_path))

    @classmethod
    def _from_state(
        cls,
        meta: dict[str, Any],
        arrays: dict[str, np.ndarray],
        blobs: dict[str, bytes],
        source: ModelSource,
        csv_path: Path,
    ) -> FittedPlan:
        detector, blend, file_model = meta["detector"], meta["blend"], meta["file_model"]
        team = meta["team"]
        weights = {**meta["weights"], "models": tuple(meta["weights"]["models"])}
        return cls(
            layout=Layout.from_state(meta["layout"], csv_path),
            options=ScoreOptions(**meta["options"]),
            matches=tuple(Match(**m) for m in meta["matches"]),
            bundles=tuple(_verified(source, m["name"], m["sha256"]) for m in meta["models"]),
            weights=Weights(**weights),
            base_rate=meta["base_rate"],
            anomaly_names=tuple(meta["anomaly_names"]),
            detector=(
                FittedDetector.from_state(detector, "detector", arrays, blobs)
                if detector is not None
                else None
            ),
            blend=Blend.from_state(blend, "blend", arrays) if blend is not None else None,
            file_model=(
                FileModel.from_state("file_model", arrays, blobs)
                if file_model is not None
                else None
            ),
            thresholds=Thresholds(**meta["thresholds"]),
            model_reasons=_explainer(meta, "model_reasons", arrays),
            file_reasons=_explainer(meta, "file_reasons", arrays),
            team=(
                TeamLead.from_state(
                    team, "team", arrays, _verified(source, team["name"], team["sha256"])
                )
                if team is not None
                else None
            ),
            level_shift=meta["level"]["shift"],
            level_from=meta["level"]["from"],
        )


def _verified(source: ModelSource, name: str, checksums: dict[str, str]) -> ModelBundle:
    """The model the plan was fitted with, unchanged since."""
    bundle = source.load(name)
    if bundle.checksums != checksums:
        raise PlanError(f"model {name} changed since the plan was fitted")
    return bundle


def _explainer(meta: dict[str, Any], name: str, arrays: dict[str, np.ndarray]) -> Explainer | None:
    return Explainer.from_state(meta[name], name, arrays) if meta[name] is not None else None


def _time_format(meta: dict[str, Any]) -> TimeFormat:
    return TimeFormat(**{**meta, "parts": tuple(meta["parts"])})
