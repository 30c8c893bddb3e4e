"""A model source over a folder of model folders, without a database (benchmarks, tests)."""

from __future__ import annotations

import json
from pathlib import Path

from shared.engine.bundle import ModelBundle, load_bundle
from shared.engine.matching import ModelInfo
from shared.library.registry import model_folders


class FolderSource:
    """A ModelSource over a folder of model folders (no database): isolates the pipeline."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.used: list[list[str]] = []

    def models(self) -> list[ModelInfo]:
        infos = []
        for folder in model_folders(self.root):
            meta = json.loads((folder / "metadata.json").read_text())
            infos.append(
                ModelInfo(folder.name, meta["roles"], meta["value_profile"], meta["metrics"])
            )
        return infos

    def load(self, name: str) -> ModelBundle:
        return load_bundle(self.root / name, name)

    def record_usage(self, names: list[str]) -> None:
        self.used.append(list(names))
