"""Value profiles: what a file's values look like, to compare uploads with reference models."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shared.engine import roles as R
from shared.engine.roles import RoleMap

QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def _quantiles(values: np.ndarray) -> list[float] | None:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return None
    return [float(q) for q in np.quantile(finite, QUANTILES)]


def value_profile(
    frame: pd.DataFrame, roles: RoleMap, features: pd.DataFrame, clock: np.ndarray | None
) -> dict[str, Any]:
    """Feature quantiles and missing shares, plus entity and time facts of the file
    (`clock`: the timestamps in seconds, or None)."""
    rows = len(frame)
    profile: dict[str, Any] = {"rows": rows, "features": {}}
    for name in features.columns:
        values = features[name].to_numpy(np.float64)
        missing = float(np.mean(~np.isfinite(values))) if rows else 1.0
        if missing < 1.0:
            profile["features"][name] = {"quantiles": _quantiles(values), "missing": missing}
    for role in (R.CUSTOMER, R.TERMINAL):
        column = roles.get(role)
        if column is not None:
            unique = int(frame[column].nunique(dropna=True))
            profile[f"{role}_count"] = unique
            profile[f"tx_per_{role}"] = rows / max(unique, 1)
    if clock is not None:
        finite = clock[np.isfinite(clock)]
        if len(finite):
            profile["time_span_days"] = float((finite.max() - finite.min()) / 86400)
    return profile
