"""Which facts the reasons give on the real files, how often, and whether they rank.

    .venv/bin/python -m benchmarks.reasons [--dir ../shared/realdata]

Each real file is scored as a user would upload it (labels stripped, the registered library).
Among the explained rows (those with reasons: `medium` or above, or flagged), each fact (a
reason with its numbers and quoted values replaced by N) is counted: its share of the explained
rows and the fraud rate among the rows that carry it, beside the explained rows' own rate. A
fact above a quarter of the explained rows whose rate is not above the explained rows' says
little about why these rows are riskier than the others.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.real_data import DEFAULT_DIR, binary, labeled_files, score
from shared.engine.reasons import SEPARATOR

NUMBER = re.compile(r"-?\d[\d,]*(\.\d+)?%?|'[^']*'")
TOP = 4
DOMINANT = 0.25


def fact(text: str) -> str:
    """A reason with its numbers and values replaced: what kind of fact it is."""
    return NUMBER.sub("N", text).strip()


def facts_table(reasons: pd.Series, y: np.ndarray) -> tuple[pd.DataFrame, float, int]:
    """Per fact: its share of the explained rows and the fraud rate where it is given."""
    explained = reasons.fillna("").astype(str).str.len() > 0
    rows = np.flatnonzero(explained.to_numpy())
    per_row = [{fact(t) for t in reasons.iloc[i].split(SEPARATOR)} for i in rows]
    counts = Counter(f for facts in per_row for f in facts)
    out = []
    for name, count in counts.most_common(TOP):
        carriers = rows[[name in facts for facts in per_row]]
        out.append({"fact": name[:70], "share": count / len(rows), "rate": y[carriers].mean()})
    return pd.DataFrame(out), float(y[rows].mean()) if len(rows) else np.nan, len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default = Path(os.environ.get("FRAUDSCORE_REALDATA", DEFAULT_DIR))
    parser.add_argument("--dir", type=Path, default=default)
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"reasons: no folder {args.dir} (set FRAUDSCORE_REALDATA)", file=sys.stderr)
        return 2
    dominant = 0
    for name, csv, label in labeled_files(args.dir):
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
        y = binary(frame[label])
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"fraudscore-reasons-{name}.csv"
        frame.drop(columns=[label]).to_csv(path, index=False)
        try:
            out, _ = score(path)
        finally:
            path.unlink(missing_ok=True)
        table, rate, explained = facts_table(out["reasons"], y)
        print(f"\n{name}: {explained} explained rows, fraud rate among them {rate:.3f}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        above = table[(table["share"] > DOMINANT) & (table["rate"] <= rate)]
        dominant += len(above)
    print(f"\nfacts above {DOMINANT:.0%} of explained rows without a higher rate: {dominant}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
