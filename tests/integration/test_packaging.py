"""The image's install, as the Dockerfile writes it, in a clean virtual environment."""

from __future__ import annotations

import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.services import REPO_ROOT

pytestmark = pytest.mark.integration


def dockerfile_installs() -> list[list[str]]:
    """The Dockerfile's `pip install` commands, in order, as argument lists."""
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        if line.startswith("RUN "):
            for part in line[4:].split("&&"):
                words = shlex.split(part)
                if words[:2] == ["pip", "install"]:
                    commands.append(words[2:])
    return commands


def tracked_copy(target: Path) -> Path:
    """The repository's tracked files (what `COPY . .` would take, less ignored ones)."""
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    archive = target.with_suffix(".tar")
    with tarfile.open(archive, "w") as tar:
        for name in filter(None, names):
            path = REPO_ROOT / name.decode()
            if path.is_file():
                tar.add(path, arcname=name.decode())
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


@pytest.mark.timeout(600)
def test_a_clean_venv_installs_the_lock_then_the_project_as_the_dockerfile_does(
    tmp_path: Path,
) -> None:
    installs = dockerfile_installs()
    assert [c[:2] for c in installs] == [
        ["--require-hashes", "-r"],
        ["--no-deps", "--no-build-isolation"],
    ]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    app = tracked_copy(tmp_path / "app")
    for args in installs:
        run = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args],
            cwd=app,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout
    entry = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import api.asgi, worker.celery_app, scripts.setup"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert entry.returncode == 0, entry.stderr[-3000:]
    setup = subprocess.run([str(venv / "bin" / "fraudscore-setup"), "--help"], capture_output=True)
    assert setup.returncode == 0 and b"Set up everything" in setup.stdout
