"""The mandated layout and the one-way dependencies api -> shared <- worker."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MANDATED = [
    "api",
    "worker",
    "shared",
    "tests",
    "scripts",
    "requirements",
    "docker-compose.yml",
    "Procfile",
    "README.md",
    "Makefile",
    "pyproject.toml",
    ".ci/run",
    ".gitignore",
]
FORBIDDEN = {"api": {"worker", "scripts"}, "shared": {"api", "worker", "scripts"}}
FORBIDDEN["worker"] = {"api", "scripts"}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("name", MANDATED)
def test_the_mandated_top_level_exists(name: str) -> None:
    assert (ROOT / name).exists()


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_nothing_in_the_code_unpickles() -> None:
    for package in ("api", "worker", "shared", "scripts"):
        for path in (ROOT / package).rglob("*.py"):
            assert not {"pickle", "joblib", "dill", "cloudpickle"} & imported_packages(path), path


def test_the_readme_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    commands = [line.split("#")[0].strip() for line in lines[2:6] if line.startswith("make ")]
    assert commands == ["make run", "make test"]


def test_the_readme_documents_every_setting() -> None:
    from shared.settings import Settings

    readme = (ROOT / "README.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    script = (ROOT / ".ci/run").read_text().strip().splitlines()
    assert script[-1] == "make test"


def test_compose_and_procfile_run_the_same_processes() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"api", "worker", "flower", "redis", "postgres", "minio"} <= set(compose)
    assert "--appendonly" in compose["redis"]["command"]
    assert "mc mb" in " ".join(compose["minio-bucket"]["command"])
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert set(procfile) == {"release", "web", "worker", "flower"}
    assert "api.wsgi:app" in procfile["web"] and "api.wsgi:app" in compose["api"]["command"]
    for name in ("worker", "flower"):
        assert "worker.celery_app:app" in procfile[name]
        assert "worker.celery_app:app" in compose[name]["command"]
    assert procfile["release"] == "python scripts/migrate.py"
    assert compose["release"]["command"] == ["python", "scripts/migrate.py"]
