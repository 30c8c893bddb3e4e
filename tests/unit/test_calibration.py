"""The base-rate estimate by EM, where its assumption holds: only the base rate moved."""

from __future__ import annotations

import numpy as np
import pytest

from shared.engine.calibration import estimate_prior

TRAINED_AT = 0.02


def _file(rate: float, rows: int = 60_000, seed: int = 0) -> np.ndarray:
    """Scores of a file whose fraud rate is `rate`, from a model calibrated at TRAINED_AT: each
    class's evidence (a log-likelihood ratio) is drawn as at training, only the mix changes."""
    rng = np.random.default_rng(seed)
    fraud = rng.random(rows) < rate
    evidence = np.where(fraud, rng.normal(2.0, 1.5, rows), rng.normal(-2.0, 1.5, rows))
    ratio = np.exp(evidence * 4.0 / 1.5**2)  # N(2, s) over N(-2, s) at x: exp(4x / s^2)
    return TRAINED_AT * ratio / (TRAINED_AT * ratio + 1 - TRAINED_AT)


@pytest.mark.parametrize("rate", [0.003, 0.09])
def test_em_recovers_a_known_rate_when_only_the_rate_moved(rate: float) -> None:
    """The pipeline leaves EM off (ScoreOptions.prior_shift): on real files, and even on new
    seeds of a model's own simulated spec, the model is not calibrated for the file."""
    p = _file(rate)
    assert abs(p.mean() - rate) > 0.3 * rate  # the scores' plain mean is far off
    assert estimate_prior(p, TRAINED_AT) == pytest.approx(rate, rel=0.15)
    assert estimate_prior(_file(TRAINED_AT), TRAINED_AT) == pytest.approx(TRAINED_AT, rel=0.15)
