"""Settings: resolved once (flags, then environment, then platform defaults) and passed down; an installed
dualens keeps its collection in the platform's data directory, a checkout in data/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from indexer.core import settings as settings_module
from indexer.core.settings import (
    BACKEND_ENV,
    DATA_ENV,
    DB_URL_ENV,
    DEFAULT_MODEL_ENV,
    Settings,
    platform_default_data,
)

PROJECT = Path(__file__).resolve().parents[1]


def test_flags_win_over_the_environment_which_wins_over_the_defaults(tmp_path: Path) -> None:
    env = {
        DATA_ENV: str(tmp_path / "env-data"),
        DB_URL_ENV: "postgresql+psycopg://u@envhost/db",
        BACKEND_ENV: "torch",
        DEFAULT_MODEL_ENV: str(tmp_path / "model"),
    }
    flags = Settings.resolve(tmp_path / "flag-data", "postgresql+psycopg://u@flaghost/db", "onnx", env)
    assert flags.data_dir == tmp_path / "flag-data" and flags.db_url == "postgresql+psycopg://u@flaghost/db"
    assert flags.backend == "onnx" and flags.data_given
    from_env = Settings.resolve(environ=env)
    assert from_env.data_dir == tmp_path / "env-data" and from_env.db_url == env[DB_URL_ENV]
    assert from_env.backend == "torch" and from_env.default_model_dir == tmp_path / "model"
    defaults = Settings.resolve(environ={})
    assert defaults.data_dir == settings_module.DEFAULT_DATA and defaults.db_url is None
    assert defaults.backend == "auto" and not defaults.data_given
    assert defaults.default_model_dir == settings_module.DEFAULT_DATA / "models" / "default"


def test_child_processes_get_the_settings_in_their_environment(tmp_path: Path) -> None:
    resolved = Settings.resolve(tmp_path, None, "torch", environ={})
    env = resolved.child_environ({DB_URL_ENV: "postgresql+psycopg://u@stale/db", "PATH": "/bin"})
    assert env[DATA_ENV] == str(tmp_path) and env[BACKEND_ENV] == "torch" and env["PATH"] == "/bin"
    assert DB_URL_ENV not in env  # None: the data directory's own SQLite file, not a stale server
    child = Settings.resolve(environ=env)  # what the child resolves: the same settings
    assert (child.data_dir, child.db_url, child.backend) == (tmp_path, None, "torch")
    assert child.default_model_dir == Path(env[DEFAULT_MODEL_ENV]).resolve()


def test_the_cli_passes_the_database_down_without_writing_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from indexer import commands
    from ui.cli import main

    seen: list[tuple[str | None, Settings]] = []

    def record(args) -> int:
        seen.append((os.environ.get(DB_URL_ENV), args.settings))
        return 0

    monkeypatch.delenv(DB_URL_ENV, raising=False)
    monkeypatch.setattr(commands, "cmd_check", record)
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite'}"
    assert main(["check", "--data", str(tmp_path), "--db", url]) == 0
    assert seen == [(None, Settings.resolve(tmp_path, url, None, environ={}))]


def test_a_checkout_keeps_data_and_an_installation_uses_the_platform_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    checkout, site = tmp_path / "checkout", tmp_path / "site-packages"
    for root in (checkout, site):
        (root / "indexer").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("[project]\nname = 'dualens'\n")
    assert platform_default_data(checkout) == checkout / "data"
    assert platform_default_data(site) == tmp_path / "xdg" / "dualens"
    assert settings_module.DEFAULT_DATA == PROJECT / "data"  # the tests run in a checkout


def _fresh_install(tmp_path: Path) -> Path:
    """A wheel of this source tree installed into a new virtualenv whose dependencies come from this
    one's site-packages (a .pth file); returns the virtualenv's bin folder."""
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("indexer", "search", "ui"):
        shutil.copytree(PROJECT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        if (PROJECT / name).exists():
            shutil.copy(PROJECT / name, source / name)
    wheels = tmp_path / "wheels"
    quiet = {"check": True, "capture_output": True, "timeout": 300}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", str(source), "-w", wheels], **quiet
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], **quiet)
    target = Path(
        subprocess.run(
            [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            **quiet,
            text=True,
        ).stdout.strip()
    )
    wheel = next(wheels.glob("dualens-*.whl"))
    # pip --python: the new interpreter sees only its own site-packages while it installs (this
    # virtualenv's editable dualens is never touched), and the dualens script runs the new interpreter
    subprocess.run([*pip, "--python", venv / "bin" / "python", "install", "-q", "--no-deps", wheel], **quiet)
    (target / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # after installing
    return venv / "bin"


@pytest.mark.slow
def test_an_installed_wheel_indexes_into_the_platform_data_dir_not_site_packages(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from importlib.metadata import distribution

    from tests.helpers.ui_fixtures import make_photos

    bin_dir = _fresh_install(tmp_path)
    assert distribution("dualens").files  # this virtualenv's own dualens was left installed
    photos, xdg = tmp_path / "photos", tmp_path / "xdg"
    make_photos(photos, n=3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUALENS_") and k != "PYTHONPATH"}
    env.update(XDG_DATA_HOME=str(xdg), HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1")
    run = {"env": env, "cwd": tmp_path, "capture_output": True, "text": True, "timeout": 300}
    where = subprocess.run([bin_dir / "python", "-c", "import indexer; print(indexer.__file__)"], **run)
    assert where.stdout.startswith(str(tmp_path / "venv")), where  # the installed copy, not this tree
    argv = [bin_dir / "dualens", "index", "--model", str(tiny_model_dir), "--backend", "torch"]
    done = subprocess.run([*argv, "--workers", "0", "--no-progress", str(photos)], **run)
    assert done.returncode == 0, done.stderr
    platform_data = xdg / "dualens"
    assert (platform_data / "dualens.sqlite").is_file() and (platform_data / "vectors.faiss").is_file()
    assert f"using the collection in {platform_data}" in done.stderr
    assert not list((tmp_path / "venv").rglob("dualens.sqlite"))  # nothing inside site-packages
    found = subprocess.run([bin_dir / "dualens", "search", "--json", "a photo", "-k", "2"], **run)
    assert found.returncode == 0 and '"hits"' in found.stdout  # stdout stays JSON
    assert f"using the collection in {platform_data}" in found.stderr
