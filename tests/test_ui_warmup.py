"""The UI server's background load of the collection (ui/warmup.py, ui/launch.py): the text tower
first, the CPU-bound rest once Streamlit's server has started, one load per data directory, and
the page's search box drawn before it ends."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from search import prestart
from ui import launch, warmup


@pytest.fixture(autouse=True)
def _no_started_text_tower() -> Iterator[None]:
    prestart.claim("", None)
    yield
    prestart.claim("", None)


def _copy(world: tuple[Path, Path], tmp_path: Path) -> str:
    data = tmp_path / "data"
    shutil.copytree(world[0], data)
    return str(data.resolve())


def test_the_load_starts_the_text_tower_then_waits_for_the_server_before_the_rest(
    api_world: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ui.page import get_backend

    monkeypatch.delenv("DUALENS_DB_URL", raising=False)
    data = _copy(api_world, tmp_path)
    server_up = threading.Event()
    tower_started: list[bool] = []

    def until_server_up() -> None:
        tower_started.append(prestart._started is not None)
        server_up.wait(30)

    load = warmup.begin(data, until_server_up)
    try:
        assert warmup.begin(data) is load  # one load per data directory
        assert not load.done.wait(1.0)  # held: nothing CPU-bound before the server has started
        assert tower_started == [True]
        server_up.set()
        assert load.done.wait(60)
        assert load.error is None
    finally:
        server_up.set()
        load.done.wait(60)
        get_backend.clear()


def test_a_failed_load_ends_and_keeps_its_error_for_the_page_to_ask_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "dualens.sqlite").write_bytes(b"not a database" * 64)
    load = warmup.begin(str(data.resolve()))
    assert load.done.wait(60)
    assert load.error is not None


def test_the_server_start_is_seen_in_the_streamlit_runtime_without_importing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = types.SimpleNamespace(name="INITIAL")
    runtime = types.SimpleNamespace(exists=lambda: True, instance=lambda: types.SimpleNamespace(state=state))
    monkeypatch.setitem(sys.modules, "streamlit.runtime.runtime", types.SimpleNamespace(Runtime=runtime))
    threading.Timer(0.5, lambda: setattr(state, "name", "NO_SESSIONS_CONNECTED")).start()
    start = time.monotonic()
    launch._server_started(timeout_s=20)
    assert 0.4 <= time.monotonic() - start < 10


def test_waiting_for_a_server_that_never_starts_gives_up_at_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "streamlit.runtime.runtime", raising=False)
    start = time.monotonic()
    launch._server_started(timeout_s=0.3)
    assert 0.25 <= time.monotonic() - start < 5


def test_the_service_variables_are_the_remote_clients_own() -> None:
    from ui import config, remote

    assert (config.API_URL_ENV, config.API_KEY_FILE_ENV) == (remote.API_URL_ENV, remote.API_KEY_FILE_ENV)


def test_dualens_ui_starts_its_server_without_loading_the_http_client_or_the_backend(
    api_world: tuple[Path, Path], tmp_path: Path
) -> None:
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = (
        "import os, sys\n"
        "from ui.cli import main\n"
        "def instead(path, argv, env):\n"
        "    heavy = ('httpx', 'ui.remote', 'pydantic', 'sqlalchemy', 'faiss', 'onnxruntime', 'streamlit')\n"
        "    print(argv[2], sorted(m for m in heavy if m in sys.modules)); sys.exit(0)\n"
        "os.execve = instead\n"
        f"main(['ui', '--data', {str(api_world[0])!r}, '--port', '{port}'])\n"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("DUALENS_DB_URL", "DUALENS_API_URL", "PYTHONPATH")
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ui.launch", "[]"]  # the server is started next, by exec
