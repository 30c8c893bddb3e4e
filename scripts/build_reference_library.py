"""Simulate and train the reference library into AUTOML_MODELS_DIR, then register it."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from shared.db.migrate import upgrade
from shared.db.session import session_scope
from shared.library.build import build_library
from shared.library.registry import populate
from shared.settings import Settings, get_settings


def build_and_register(
    settings: Settings, count: int, rows_scale: float, verbose: bool = True
) -> int:
    """Build what is missing (with a progress bar), register everything; exit status. Not
    `verbose`: one line for what was built and registered instead of the tables."""
    with tqdm(total=count, desc="library  ", unit="model", leave=verbose) as bar:
        report = build_library(
            settings.models_dir,
            settings.var_dir / "reference_data",
            count=count,
            rows_scale=rows_scale,
            progress=lambda spec: bar.update(1),
        )
    for spec, result in report.results if verbose else []:
        m = result.metrics
        print(
            f"  {spec.name:28s} {spec.domain:13s} rows={m['rows']:6d} fraud={m['fraud_rate']:.4f}"
            f" roc_auc={m['roc_auc']:.3f} pr_auc={m['pr_auc']:.3f}"
        )
    upgrade(settings.db_url)
    with session_scope(settings.db_url) as session:
        summary = populate(session, settings.models_dir)
    if verbose:
        print(f"built {len(report.results)} models in {report.seconds:.1f} s")
        print(summary.render())
    else:
        print(
            f"library   built {len(report.results)} models in {report.seconds:.0f} s; "
            f"registered {len(summary.added)} new, {len(summary.updated)} updated"
            + (f", {len(summary.failed)} failed" if summary.failed else ""),
            flush=True,
        )
    return 1 if summary.failed else 0


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=settings.reference_library_size)
    parser.add_argument("--rows-scale", type=float, default=settings.reference_rows_scale)
    args = parser.parse_args(argv)
    return build_and_register(settings, args.count, args.rows_scale)


if __name__ == "__main__":
    sys.exit(main())
