"""A team model at scoring time: matched by the file's inputs, it turns the label-free score
into the team's own calibrated probability (its model's score and the file's evidence, weighed
as they proved themselves on the team's labels)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.engine.bundle import ModelBundle
from shared.engine.calibration import Stack
from shared.engine.features import SHARE_PREFIX
from shared.engine.matching import ModelInfo
from shared.engine.roles import RoleMap

TEAM_KIND = "team"
MIN_COVERAGE = 0.9  # the share of a team model's learned importance the file must feed


def is_team(info: ModelInfo) -> bool:
    return info.metrics.get("kind") == TEAM_KIND


def input_names(names: Iterable[str], roles: RoleMap) -> list[str]:
    """The anomaly inputs' names with an id role's share named by its column (`share:device_id`,
    not `share:terminal`), so that a team model finds it in any file where that column is."""
    out = []
    for name in names:
        role = name[len(SHARE_PREFIX) :] if name.startswith(SHARE_PREFIX) else None
        out.append(f"{SHARE_PREFIX}{roles.columns[role]}" if role in roles.columns else name)
    return out


def coverage(info: ModelInfo, names: set[str]) -> float:
    """The share of the team model's learned importance that these inputs feed."""
    importance = info.value_profile.get("importance") or {}
    total = sum(importance.values())
    return sum(w for f, w in importance.items() if f in names) / total if total else 0.0


def family(name: str) -> str:
    """A team model's name without its version (`chargebacks@2` -> `chargebacks`)."""
    return name.rsplit("@", 1)[0]


def version_of(name: str) -> int:
    tail = name.rsplit("@", 1)[-1] if "@" in name else "1"
    return int(tail) if tail.isdigit() else 1


def best_team(
    infos: Iterable[ModelInfo], names: set[str], columns: set[str]
) -> tuple[ModelInfo, float] | None:
    """The team model this file feeds best, if any: the newest version of each, trained on a
    file of this schema (at least MIN_COVERAGE of its columns here, by name) and whose learned
    importance these inputs feed (at least MIN_COVERAGE of it)."""
    newest: dict[str, ModelInfo] = {}
    for info in infos:
        if is_team(info):
            kept = newest.get(family(info.name))
            if kept is None or version_of(info.name) > version_of(kept.name):
                newest[family(info.name)] = info
    found = []
    for info in newest.values():
        trained_on = set(info.value_profile.get("columns") or ())
        schema = len(trained_on & columns) / len(trained_on) if trained_on else 0.0
        cover = coverage(info, names)
        if schema >= MIN_COVERAGE and cover >= MIN_COVERAGE:
            found.append((info, cover))
    if not found:
        return None
    return max(found, key=lambda f: (f[1], float(f[0].metrics.get("roc_auc") or 0), f[0].name))


class WithoutTeams:
    """A model source showing the reference library only (for the label-free score)."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def models(self) -> list[ModelInfo]:
        return [info for info in self.source.models() if not is_team(info)]

    def load(self, name: str) -> ModelBundle:
        return self.source.load(name)

    def record_usage(self, names: list[str]) -> None:
        self.source.record_usage(names)


def mid_rank(ordered: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each value's rank among `ordered` (sorted), in (0, 1): ties take their middle."""
    n = max(len(ordered), 1)
    below = np.searchsorted(ordered, values, "left")
    upto = np.searchsorted(ordered, values, "right")
    return np.clip((below + upto) / (2.0 * n), 0.5 / n, 1 - 0.5 / n)


@dataclass(frozen=True, eq=False)
class TeamLead:
    """The matched team model, where its inputs are among the file's (`columns`: the anomaly
    input feeding each of its inputs, -1 for none) and the sample's label-free probabilities
    (sorted), which rank every row's."""

    bundle: ModelBundle
    coverage: float
    columns: np.ndarray
    evidence: np.ndarray

    @classmethod
    def fit(
        cls, bundle: ModelBundle, cover: float, names: Sequence[str], evidence: np.ndarray
    ) -> TeamLead:
        where = {name: i for i, name in enumerate(names)}
        columns = np.array([where.get(f, -1) for f in bundle.features], np.int64)
        return cls(bundle, cover, columns, np.sort(np.asarray(evidence, np.float64)))

    @property
    def stack(self) -> Stack:
        assert isinstance(self.bundle.calibrator, Stack)
        return self.bundle.calibrator

    def inputs(self, ax: np.ndarray) -> np.ndarray:
        x = np.full((len(ax), len(self.columns)), np.nan, np.float32)
        have = self.columns >= 0
        x[:, have] = ax[:, self.columns[have]]
        return x

    def __call__(self, ax: np.ndarray, label_free: np.ndarray) -> np.ndarray:
        """The team's probability of each row, from its inputs and label-free probability."""
        raw = self.bundle.predict_raw(self.inputs(ax))
        return self.stack(raw, mid_rank(self.evidence, label_free))

    def contributions(self, ax: np.ndarray) -> np.ndarray:
        """Each anomaly input's contribution to the team model's log-odds (the bias last), as
        the file model's are laid out."""
        own = self.bundle.contributions(self.inputs(ax))
        out = np.zeros((len(ax), ax.shape[1] + 1))
        have = self.columns >= 0
        out[:, self.columns[have]] = own[:, :-1][:, have]
        out[:, -1] = own[:, -1]
        return out

    def state(self, prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        arrays[f"{prefix}.columns"], arrays[f"{prefix}.evidence"] = self.columns, self.evidence
        return {
            "name": self.bundle.name,
            "sha256": self.bundle.checksums,
            "coverage": self.coverage,
        }

    @classmethod
    def from_state(
        cls, meta: dict[str, Any], prefix: str, arrays: dict[str, np.ndarray], bundle: ModelBundle
    ) -> TeamLead:
        return cls(
            bundle, meta["coverage"], arrays[f"{prefix}.columns"], arrays[f"{prefix}.evidence"]
        )
