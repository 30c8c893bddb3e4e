"""How much each source of evidence counts, and the words that say so from the same numbers.

Three weights decide a row's rank: each matched reference model's share of the ensemble
(similarity x validation quality), the ensemble's share against the file's anomaly rank
(trust x best similarity x share of the file's columns the models see), and, once a model of
the file ranks the rows, the anomaly rank's share beside it (the hedge). The measurements
behind the constants are in docs/decisions.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.engine import roles as R
from shared.engine.calibration import logit

if TYPE_CHECKING:
    from shared.engine.columns import ExtraColumns
    from shared.engine.matching import Match
    from shared.engine.roles import RoleMap
    from shared.engine.team import TeamLead

FALLBACK_PRIOR = 0.01  # the base rate assumed when the reference models see little of a file
REFERENCE_TRUST = 0.25  # a perfect match's weight against the anomaly rank (leave-one-file-out)
ANOMALY_HEDGE = 0.35  # the anomaly rank's share beside the file model (it learns from noise)
MIN_MODEL_WEIGHT = 1e-9


@dataclass(frozen=True)
class Weights:
    """Every weight of one file's scoring, and the numbers they were made from."""

    models: tuple[float, ...] = ()  # per matched reference model, summing to 1
    trust: float = REFERENCE_TRUST
    similarity: float = 0.0  # the best match's
    column_share: float = 0.0  # share of the file's usable columns the models read
    hedge: float = ANOMALY_HEDGE

    @property
    def reference(self) -> float:
        """The ensemble's share of the blended rank, in [0, 1]."""
        if not self.models:
            return 0.0
        return float(np.clip(self.trust * self.similarity * self.column_share, 0.0, 1.0))

    def explain(self, file_model: bool, positive: float, negative: float) -> dict[str, Any]:
        """The blend as the job's `methods_used` shows it, from these numbers."""
        out: dict[str, Any] = {
            "reference_weight": round(self.reference, 4),
            "anomaly_weight": round(1 - self.reference, 4),
            "reason": (
                f"reference weight {self.reference:.3f} = trust {self.trust:g} x best "
                f"similarity {self.similarity:.3f} x share of the file's usable columns the "
                f"reference models read {self.column_share:.3f}"
            ),
            "file_model": file_model,
        }
        if file_model:
            out["file_model_reason"] = (
                "rows ranked by an XGBoost model of this file, trained on the blend's top "
                f"{positive:.0%} and bottom {negative:.0%} of the sample "
                f"({1 - self.hedge:.0%} of the rank; the anomaly rank the rest)"
            )
        return out


def model_weights(chosen: list[Match]) -> tuple[float, ...]:
    """Weights proportional to similarity x validation quality, summing to 1."""
    raw = [max(m.similarity * m.quality, MIN_MODEL_WEIGHT) for m in chosen]
    total = sum(raw)
    return tuple(value / total for value in raw)


def column_share(roles: RoleMap, extra: ExtraColumns) -> float:
    """The share of the file's informative columns that the reference models can read."""
    informative = {c for r, c in roles.columns.items() if r not in (R.LABEL, R.TX_ID)}
    seen = len(informative)
    return seen / max(1, seen + len(extra.used))


def weigh(
    chosen: list[Match], roles: RoleMap, extra: ExtraColumns, trust: float = REFERENCE_TRUST
) -> Weights:
    """The weights for the matched models `chosen` (best first) on a file of these columns."""
    if not chosen:
        return Weights(trust=trust)
    share = column_share(roles, extra)
    return Weights(model_weights(chosen), trust, chosen[0].similarity, share)


def pooled(
    probabilities: list[np.ndarray], weights: tuple[float, ...], in_logit: bool
) -> np.ndarray:
    """The reference models' calibrated probabilities pooled by weight, as log-odds or as
    probabilities."""
    out = np.zeros(len(probabilities[0]))
    for weight, p in zip(weights, probabilities, strict=True):
        out += weight * (logit(p) if in_logit else p)
    return 1 / (1 + np.exp(-out)) if in_logit else out


def explain_team(team: TeamLead) -> dict[str, Any]:
    """Why the team's model leads, and how much of the file's own evidence it keeps, as the
    job's `methods_used` shows it (the weights were fitted on the team's labels)."""
    metrics, stack = team.bundle.metadata.get("metrics", {}), team.stack
    team_roc, free_roc = metrics.get("roc_auc"), metrics.get("label_free_roc_auc")
    proven = (
        f"on its {metrics.get('rows', '?')} labeled rows, out of time, it ranked fraud at ROC "
        f"{team_roc:.3f} against {free_roc:.3f} for the label-free score"
        if team_roc is not None and free_roc is not None
        else "validated on the team's labels"
    )
    return {
        "name": team.bundle.name,
        "coverage": round(team.coverage, 4),
        "team_weight": round(stack.team, 4),
        "evidence_weight": round(stack.evidence, 4),
        "validation": {k: metrics[k] for k in ("roc_auc", "label_free_roc_auc") if k in metrics},
        "leads_ranking": stack.team > stack.evidence,
        "reason": (
            f"the team's model {team.bundle.name} "
            + (
                "leads"
                if stack.team > stack.evidence
                else "sets the fraud level; the label-free ranking stays"
            )
            + f" ({team.coverage:.0%} of what it learnt is in this file): {proven}; its "
            f"log-odds count {stack.team:.2f}x and the label-free rank's {stack.evidence:.2f}x, "
            "as fitted on those labels"
        ),
    }
