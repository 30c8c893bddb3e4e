"""Probability calibrators stored as JSON: Platt scaling or isotonic regression."""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds, with probabilities clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


class Calibrator:
    """Maps a model's raw probability to a calibrated one."""

    kind = "identity"

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return np.asarray(raw, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind}


class Platt(Calibrator):
    """p = sigmoid(a * logit(raw) + b), fitted by logistic regression."""

    kind = "platt"

    def __init__(self, a: float, b: float) -> None:
        self.a, self.b = float(a), float(b)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * logit(np.asarray(raw, np.float64)) + self.b)))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a, "b": self.b}

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray) -> Platt:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=1e4, max_iter=1000)
        model.fit(logit(raw).reshape(-1, 1), y)
        return cls(model.coef_[0, 0], model.intercept_[0])


class Isotonic(Calibrator):
    """A monotone step function through (x, y) knots, interpolated."""

    kind = "isotonic"

    def __init__(self, x: list[float], y: list[float]) -> None:
        self.x, self.y = np.asarray(x, np.float64), np.asarray(y, np.float64)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(raw, np.float64), self.x, self.y)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray) -> Isotonic:
        from sklearn.isotonic import IsotonicRegression

        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        model.fit(raw, y)
        return cls(model.X_thresholds_.tolist(), model.y_thresholds_.tolist())


def fit_calibrator(raw: np.ndarray, y: np.ndarray, seed: int = 0) -> Calibrator:
    """The calibrator (none, Platt or isotonic) with the lowest cross-validated Brier score.

    Isotonic steps overfit a few positives and Platt can be worse than XGBoost's own logistic
    output, so each candidate is fitted on one half of the validation rows and scored on the
    other (both ways); the winner is refitted on all of them.
    """
    raw, y = np.asarray(raw, np.float64), np.asarray(y)
    kinds: list[type[Calibrator]] = [Calibrator, Platt]
    if int(y.sum()) >= 20:
        kinds.append(Isotonic)
    folds = _two_folds(y, seed)
    if folds is None:
        return Platt.fit(raw, y) if y.min() != y.max() else Calibrator()
    scores = {}
    for kind in kinds:
        losses = []
        for train, test in (folds, folds[::-1]):
            model = kind() if kind is Calibrator else kind.fit(raw[train], y[train])  # type: ignore[attr-defined]
            losses.append(np.mean((model(raw[test]) - y[test]) ** 2))
        scores[kind] = float(np.mean(losses))
    best = min(kinds, key=lambda kind: scores[kind])
    return Calibrator() if best is Calibrator else best.fit(raw, y)  # type: ignore[attr-defined]


def _two_folds(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """A stratified split in two halves, or None when a half would miss a class."""
    rng = np.random.default_rng(seed)
    first = np.zeros(len(y), bool)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        if len(idx) < 4:
            return None
        rng.shuffle(idx)
        first[idx[: len(idx) // 2]] = True
    return np.flatnonzero(first), np.flatnonzero(~first)


class Stack(Calibrator):
    """A team model's probability from its raw score and the file's own evidence (the label-free
    score's rank in the file, in [0, 1]): p = sigmoid(bias + team x logit(raw) + evidence x
    logit(rank)), both weights >= 0, fitted on the team's labels out of time. The weights are
    what each source proved on those labels; alone (no rank), the evidence is taken at the
    median."""

    kind = "stack"

    def __init__(self, bias: float, team: float, evidence: float) -> None:
        self.bias, self.team, self.evidence = float(bias), float(team), float(evidence)

    def __call__(self, raw: np.ndarray, rank: np.ndarray | None = None) -> np.ndarray:
        z = self.bias + self.team * logit(np.asarray(raw, np.float64))
        if rank is not None:
            z = z + self.evidence * logit(rank)
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "bias": self.bias, "team": self.team, "evidence": self.evidence}

    def at_rate(self, raw: np.ndarray, rank: np.ndarray, rate: float) -> Stack:
        """The same weights, the bias moved so that these rows' mean probability is `rate`."""
        return Stack(self.bias + level_shift(self(raw, rank), rate), self.team, self.evidence)

    @classmethod
    def fit(cls, raw: np.ndarray, rank: np.ndarray, y: np.ndarray, l2: float = 1.0) -> Stack:
        """Non-negative weights by penalised maximum likelihood (L-BFGS-B)."""
        from scipy.optimize import minimize

        x = np.column_stack([logit(raw), logit(rank)])
        y = np.asarray(y, np.float64)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            z = w[0] + x @ w[1:]
            p = 1.0 / (1.0 + np.exp(-z))
            nll = np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * np.sum(w[1:] ** 2)
            gradient = np.concatenate([[np.sum(p - y)], x.T @ (p - y) + l2 * w[1:]])
            return float(nll), gradient

        prior = float(np.clip(y.mean(), EPS, 1 - EPS))
        start = np.array([np.log(prior / (1 - prior)), 0.0, 0.0])
        bounds = [(None, None), (0.0, None), (0.0, None)]
        found = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
        return cls(*found.x)


def shifted(p: np.ndarray, shift: float) -> np.ndarray:
    """Probabilities moved by `shift` in log-odds."""
    return 1.0 / (1.0 + np.exp(-(logit(p) + shift)))


def level_shift(p: np.ndarray, rate: float) -> float:
    """The shift in log-odds that makes the mean of `p` equal `rate` (by bisection)."""
    z = logit(p)  # once, not at every step
    low, high = -30.0, 30.0
    for _ in range(60):
        middle = (low + high) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(z + middle)))) < rate:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def calibrator_from_json(data: dict[str, Any]) -> Calibrator:
    kind = data.get("kind")
    if kind == "stack":
        return Stack(data["bias"], data["team"], data["evidence"])
    if kind == "platt":
        return Platt(data["a"], data["b"])
    if kind == "isotonic":
        return Isotonic(data["x"], data["y"])
    if kind == "identity":
        return Calibrator()
    raise ValueError(f"unknown calibrator kind {kind!r}")


def shift_prior(p: np.ndarray, prior_from: float, prior_to: float) -> np.ndarray:
    """Bayes' rule for a new base rate: the same evidence under another prior."""
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    a = p * (prior_to / prior_from)
    b = (1 - p) * ((1 - prior_to) / (1 - prior_from))
    return a / (a + b)


def estimate_prior(p: np.ndarray, prior_from: float, iterations: int = 100) -> float:
    """The unlabeled file's base rate by EM (Saerens et al., 2002), from calibrated scores."""
    prior = float(prior_from)
    for _ in range(iterations):
        new = float(np.mean(shift_prior(p, prior_from, prior)))
        if abs(new - prior) < 1e-7:
            return new
        prior = new
    return prior
