"""Write the simulated reference datasets (or the example upload) as CSV files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from shared.library.build import write_csv
from shared.training.simulator import example_spec, reference_catalog, simulate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("var/reference_data"))
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--seed", type=int, default=20261129, help="catalog seed")
    parser.add_argument("--rows-scale", type=float, default=1.0)
    parser.add_argument("--example", type=Path, help="write only the unlabeled example here")
    args = parser.parse_args(argv)
    if args.example:
        write_csv(simulate(example_spec(), labeled=False), args.example)
        print(f"wrote {args.example}")
        return 0
    specs = reference_catalog(args.count, seed=args.seed, rows_scale=args.rows_scale)
    for spec in tqdm(specs, desc="simulating", unit="dataset"):
        write_csv(simulate(spec), args.out / f"{spec.name}.csv")
    print(f"wrote {len(specs)} datasets to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
