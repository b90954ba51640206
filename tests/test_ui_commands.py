"""`dualens ui`: option parsing and the streamlit command line it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from indexer.core.errors import UsageError
from ui import commands
from ui.cli import build_parser
from ui.config import UiConfig


def test_ui_subcommand_defaults_to_localhost_8501_and_takes_data() -> None:
    args = build_parser().parse_args(["ui", "--data", "/tmp/x"])
    assert (args.host, args.port, args.data) == ("127.0.0.1", 8501, "/tmp/x")
    assert args.func is commands.run_ui
    args = build_parser().parse_args(["ui", "--port", "9000"])
    assert args.port == 9000


def test_streamlit_command_is_headless_on_the_given_address_with_the_data_dir() -> None:
    argv = commands.streamlit_argv(Path("/data/dir"), "127.0.0.1", 8555, UiConfig(max_upload_bytes=5 << 20))
    assert argv[:5] == [sys.executable, "-m", "ui.launch", "run", str(commands.APP)]
    for flag in (
        "--server.headless=true",
        "--server.address=127.0.0.1",
        "--server.port=8555",
        "--server.maxUploadSize=5",
        "--browser.gatherUsageStats=false",
        "--client.showErrorDetails=none",
    ):
        assert flag in argv
    assert argv[-3:] == ["--", "--data", "/data/dir"]
    assert commands.APP.is_file()


def test_run_ui_passes_the_data_dir_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, object] = {}

    def fake_exec(path: str, argv: list[str], env: dict[str, str]) -> None:
        seen.update(path=path, argv=argv, env=env)

    monkeypatch.setattr(commands.os, "execve", fake_exec)
    args = _ui_args("--data", str(tmp_path), "--port", "8600", "--backend", "torch")
    assert commands.run_ui(args) == 0
    assert seen["env"]["DUALENS_DATA"] == str(tmp_path.resolve())  # type: ignore[index]
    assert seen["env"]["DUALENS_BACKEND"] == "torch"  # type: ignore[index]
    assert "--server.port=8600" in seen["argv"]  # type: ignore[operator]
    assert seen["path"] == sys.executable


def _ui_args(*argv: str) -> argparse.Namespace:
    from ui.cli import build_parser

    return build_parser().parse_args(["ui", *argv])


@pytest.mark.parametrize("port", [0, -1, 70000])
def test_run_ui_rejects_impossible_ports(port: int) -> None:
    with pytest.raises(UsageError):
        commands.run_ui(argparse.Namespace(data=None, port=port, host="127.0.0.1"))


def test_a_taken_port_is_reported_before_anything_is_announced(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    monkeypatch.setattr(commands.os, "execve", lambda *a: pytest.fail("streamlit must not start"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = _ui_args("--data", str(tmp_path), "--port", str(port))
        with pytest.raises(UsageError, match="choose another port"):
            commands.run_ui(args)
    assert "serving" not in capsys.readouterr().err


@pytest.mark.slow
def test_the_ui_server_loads_the_collection_at_start_before_any_visit(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    import os
    import socket
    import subprocess
    import time

    from tests.helpers.ui_fixtures import build_collection, make_photos
    from ui.launch import READY

    photos, data = tmp_path / "photos", tmp_path / "data"
    make_photos(photos, n=3)
    build_collection(data, photos, tiny_model_dir)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log = tmp_path / "server.log"
    env = dict(os.environ, DUALENS_DATA=str(data), HF_HUB_OFFLINE="1")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            commands.streamlit_argv(data, "127.0.0.1", port), env=env, stdout=out, stderr=out
        )
        try:
            deadline = time.monotonic() + 120
            while READY not in log.read_text(errors="replace") and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text(errors="replace")
                time.sleep(0.3)
            assert READY in log.read_text(errors="replace")  # no page was opened: loaded at start
        finally:
            proc.terminate()
            proc.wait(timeout=15)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["serve", "--workers", "0"], "--workers"),
        (["serve", "--workers", "65"], "--workers"),
        (["serve", "--port", "0"], "--port"),
        (["ui", "--port", "70000"], "--port"),
        (["ui", "--port", "eighty"], "--port"),
    ],
)
def test_server_counts_out_of_range_are_refused_in_one_line(
    argv: list[str], flag: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ui.cli import main

    monkeypatch.setattr(commands.os, "execve", lambda *a: pytest.fail("streamlit must not start"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"dualens: error: {flag} must be")


def test_ui_hands_the_database_to_streamlit_in_its_environment_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os

    from indexer.core.settings import DB_URL_ENV
    from ui.cli import main

    seen: dict[str, dict[str, str]] = {}
    monkeypatch.setattr(commands.os, "execve", lambda path, argv, env: seen.update(env=env))
    monkeypatch.delenv(DB_URL_ENV, raising=False)
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite'}"
    assert main(["ui", "--data", str(tmp_path), "--db", url, "--port", "8601"]) == 0
    assert seen["env"][DB_URL_ENV] == url and DB_URL_ENV not in os.environ
