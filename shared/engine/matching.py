"""Match an upload against the reference library.

similarity = coverage x (1 + role overlap) / 2 x (1 + distribution similarity) / 2, in [0, 1]:
coverage is the share of a model's learned importance that the upload's roles can feed; role
overlap is the Jaccard index of the two schemas' roles (a model that ignores what the upload
offers fits it less); distribution similarity compares feature quantiles, weighted by importance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.engine.features import FEATURES, NEEDS
from shared.engine.profile import QUANTILES


@dataclass(frozen=True)
class ModelInfo:
    """What matching needs to know of a registry row."""

    name: str
    column_roles: dict[str, str]
    value_profile: dict[str, Any]
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Match:
    name: str
    similarity: float
    coverage: float
    jaccard: float
    distribution: float
    quality: float
    mapping: dict[str, str] = field(default_factory=dict)
    missing_roles: list[str] = field(default_factory=list)

    def explain(self, weight: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "similarity": round(self.similarity, 4),
            "schema_coverage": round(self.coverage, 4),
            "role_overlap": round(self.jaccard, 4),
            "distribution_similarity": round(self.distribution, 4),
            "validation_quality": round(self.quality, 4),
            "weight": round(weight, 4),
            "column_mapping": self.mapping,
            "model_inputs_missing": self.missing_roles,
        }


def sample_quantiles(matrix: np.ndarray) -> dict[str, list[float]]:
    """Quantiles of each feature over an upload's sample, for features it has."""
    out = {}
    for i, name in enumerate(FEATURES):
        values = matrix[:, i]
        finite = values[np.isfinite(values)]
        if len(finite):
            out[name] = [float(q) for q in np.quantile(finite, QUANTILES)]
    return out


def _feature_similarity(upload: list[float], model: list[float]) -> float:
    # asinh ~ log for large values: a 2x shift in amounts costs the same as in counts.
    gap = np.abs(np.arcsinh(np.asarray(upload)) - np.arcsinh(np.asarray(model)))
    return float(np.exp(-gap.mean()))


def match_models(
    models: list[ModelInfo], upload_roles: dict[str, str], upload_quantiles: dict[str, list[float]]
) -> list[Match]:
    """Every model, best first, with similarity in [0, 1] and the column mapping."""
    roles = set(upload_roles)
    matches = []
    for model in models:
        importance = model.value_profile.get("importance") or {}
        total = sum(importance.values()) or 1.0
        covered = {
            f: w for f, w in importance.items() if w > 0 and set(NEEDS.get(f, ("?",))) <= roles
        }
        coverage = sum(covered.values()) / total
        model_features = model.value_profile.get("features", {})
        sims, weights = [], []
        for name, weight in covered.items():
            model_q = (model_features.get(name) or {}).get("quantiles")
            if model_q and name in upload_quantiles:
                sims.append(_feature_similarity(upload_quantiles[name], model_q))
                weights.append(weight)
        distribution = float(np.average(sims, weights=weights)) if sims else 0.0
        auc = float(model.metrics.get("roc_auc") or 0.5)
        mapping = {
            upload_roles[role]: column
            for role, column in model.column_roles.items()
            if role in upload_roles and role != "label"
        }
        # Roles the model reads that the upload lacks (ids of rows and labels are not inputs).
        missing = sorted(r for r in model.column_roles if r not in roles | {"label", "tx_id"})
        model_roles = set(model.column_roles) - {"label", "tx_id"}
        jaccard = len(model_roles & roles) / max(len(model_roles | roles), 1)
        matches.append(
            Match(
                name=model.name,
                similarity=coverage * (0.5 + 0.5 * jaccard) * (0.5 + 0.5 * distribution),
                coverage=coverage,
                jaccard=jaccard,
                distribution=distribution,
                quality=max(0.0, 2 * auc - 1),
                mapping=mapping,
                missing_roles=missing,
            )
        )
    matches.sort(key=lambda m: (-m.similarity, -m.quality, m.name))
    return matches
