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
SUBPACKAGES = ("engine", "training", "library", "service", "storage", "db")
# Inside shared/: which parts each part may not import. Engine is pure computation at the
# bottom; settings, states and errors are leaves that anything may use.
LAYERS = {
    "shared.engine": {"db", "storage", "settings", "service", "library", "training", "logs"},
    "shared.training": {"db", "storage", "settings", "service", "library", "logs"},
    "shared.storage": {"db", "service", "library", "training", "engine"},
    "shared.db": {"storage", "service", "library", "training", "engine"},
    "shared.library": {"service"},
    "shared.settings": {"db", "service", "library", "training", "engine"},
    "shared.states": {*SUBPACKAGES, "settings", "logs"},
    "shared.errors": {*SUBPACKAGES, "settings", "logs", "states"},
    "shared.defaults": {*SUBPACKAGES, "settings", "logs", "states", "errors", "uris"},
    "shared.uris": {*SUBPACKAGES, "settings", "logs", "states", "errors", "defaults"},
}


def shared_parts(path: Path) -> set[str]:
    """The parts of shared/ a module imports: `shared.engine.roles` -> "engine"."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parts: set[str] = set()
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
            if node.module == "shared":
                modules = [f"shared.{alias.name}" for alias in node.names]
        parts.update(m.split(".")[1] for m in modules if m.startswith("shared.") and "." in m)
    return parts


def modules_of(dotted: str) -> list[Path]:
    """The files of a module or package given by dotted name."""
    path = ROOT / dotted.replace(".", "/")
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


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


@pytest.mark.parametrize("part", sorted(LAYERS))
def test_shared_parts_import_only_the_layers_below_them(part: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(shared_parts(path) & LAYERS[part])
        for path in modules_of(part)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_layer_rule_catches_a_broken_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from shared.db.models import Job\nfrom shared import service\n")
    assert shared_parts(module) & LAYERS["shared.engine"] == {"db", "service"}


def test_shared_is_sub_packages_not_flat_modules() -> None:
    flat = sorted(p.stem for p in (ROOT / "shared").glob("*.py") if p.stem != "__init__")
    assert flat == ["defaults", "errors", "logs", "processes", "settings", "states", "uris"]
    assert all((ROOT / "shared" / name / "__init__.py").exists() for name in SUBPACKAGES)


def module_imports(path: Path) -> set[str]:
    """The modules of ours a file imports, at its top or inside a function (not the imports
    made for type checking only)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in {"api", "worker", "shared"}}


def test_no_module_imports_itself_through_others() -> None:
    """No import circles in api/, worker/ and shared/ (an import inside a function counts)."""
    files = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for package in ("api", "worker", "shared")
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    graph = {name: module_imports(path) & set(files) - {name} for name, path in files.items()}
    cycles = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for after in sorted(graph[node]):
                if after == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif after not in seen and after > start:  # each circle once, from its least
                    seen.add(after)
                    stack.append((after, [*trail, after]))
    assert cycles == []


MAX_FUNCTION_LINES = 60


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = []
    for package in ("api", "worker", "shared"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} {lines}")
    assert long == []


def test_compose_refuses_to_start_without_its_secrets() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["x-app"]["environment"]["SECRET_KEY"].startswith("${SECRET_KEY:?")
    flower = compose["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    assert flower.startswith("${FLOWER_BASIC_AUTH:?")


def test_no_code_edits_sys_path() -> None:
    for package in ("api", "worker", "shared", "scripts", "benchmarks", "tests"):
        for path in (ROOT / package).rglob("*.py"):
            assert "sys.path." + "insert" not in path.read_text(), path


def test_every_launcher_runs_the_same_command_lines() -> None:
    import yaml

    from scripts.run_local import commands

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"api", "worker", "flower", "redis", "postgres", "minio"} <= set(compose)
    assert "--appendonly" in compose["redis"]["command"]
    assert all(":latest" not in str(service.get("image", "")) for service in compose.values())
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert set(procfile) == {"release", "web", "worker", "flower"}
    # `make run` starts each with the venv's interpreter: `python -m gunicorn ...`.
    local = {name: " ".join(["python", *args[1:]]) for name, args in commands().items()}
    expected = {
        "api": "gunicorn -c gunicorn.conf.py api.asgi:app",
        "worker": "python -m worker",
        "flower": "python -m worker flower",
    }
    for name, command in expected.items():
        assert " ".join(compose[name]["command"]) == command
        assert procfile["web" if name == "api" else name].endswith(command)
        assert local[name] == (command if command.startswith("python") else f"python -m {command}")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["gunicorn", "-c", "gunicorn.conf.py", "api.asgi:app"]' in dockerfile
    # One set-up step: the Procfile's release, compose's one-off service, and `make run`.
    assert procfile["release"] == "python scripts/setup.py"
    assert compose["setup"]["command"] == ["python", "scripts/setup.py"]
    assert "setup.run(settings)" in (ROOT / "scripts" / "run_local.py").read_text()
    for name in ("api", "worker"):
        assert compose[name]["depends_on"]["setup"] == {
            "condition": "service_completed_successfully"
        }
