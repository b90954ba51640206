"""Start-up settings that cannot work are refused in one line, before anything runs (issue #27: 17, 23).

An API key file that is not UTF-8 or holds a key no HTTP header can carry, a ``--db`` URL with a bad
port or host, and an in-memory SQLite database (the collection would vanish at exit) each end
``dualens`` with exit status 2 and one ``dualens: error:`` line: no traceback, nothing written.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.core.errors import UsageError
from indexer.core.settings import DB_URL_ENV
from ui.cli import main

BAD_PORT_URLS = [
    "postgresql+psycopg://u@host:notaport/db",
    "postgresql+psycopg://u@[::1/db",
    "postgresql+psycopg://u:pw@host:99999/db",
]
IN_MEMORY_URLS = ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dualens: error: "), err
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[str]:
    """A port something listens on: a `serve` that got past its key checks stops there (exit 2)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield str(sock.getsockname()[1])


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def test_a_non_utf8_api_key_file_is_one_line_for_serve_and_ui_api(
    api_world: tuple[Path, Path], tmp_path: Path, capsys, taken_port: str, closed_port: str
) -> None:
    key = tmp_path / "latin1.key"
    key.write_bytes("clé-de-l-api-0123456789".encode("latin-1"))
    data = str(api_world[0])
    assert main(["serve", "--data", data, "--port", taken_port, "--api-key-file", str(key)]) == 2
    assert "is not UTF-8 text" in one_error_line(capsys)
    assert main(["ui", "--api", f"http://127.0.0.1:{closed_port}", "--api-key-file", str(key)]) == 2
    assert "is not UTF-8 text" in one_error_line(capsys)


def test_a_non_ascii_api_key_is_refused_at_start_up(
    api_world: tuple[Path, Path], tmp_path: Path, capsys, taken_port: str, closed_port: str
) -> None:
    key = tmp_path / "unicode.key"
    key.write_text("clé-secrète-0123456789\n", encoding="utf-8")
    data = str(api_world[0])
    assert main(["serve", "--data", data, "--port", taken_port, "--api-key-file", str(key)]) == 2
    assert "printable ASCII" in one_error_line(capsys)
    assert main(["ui", "--api", f"http://127.0.0.1:{closed_port}", "--api-key-file", str(key)]) == 2
    assert "printable ASCII" in one_error_line(capsys)


@pytest.mark.parametrize("url", BAD_PORT_URLS)
def test_a_database_url_with_a_bad_port_or_host_is_one_line(
    url: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["check", "--data", str(tmp_path), "--db", url]) == 2
    line = one_error_line(capsys)
    assert "is not valid" in line and "pw" not in line  # the password is never shown
    monkeypatch.setenv(DB_URL_ENV, url)  # the same URL from the environment
    assert main(["check", "--data", str(tmp_path)]) == 2
    assert "is not valid" in one_error_line(capsys)


@pytest.mark.parametrize("url", BAD_PORT_URLS[:2])
def test_the_python_api_refuses_a_bad_database_url_with_a_usage_error(url: str, tmp_path: Path) -> None:
    from indexer.core.storage.collection import Collection

    with pytest.raises(UsageError, match="is not valid"):
        Collection.open(tmp_path, db_url=url)


@pytest.mark.parametrize("url", IN_MEMORY_URLS)
def test_an_in_memory_sqlite_database_is_refused_before_indexing(
    url: str, tmp_path: Path, tiny_model_dir: Path, capsys
) -> None:
    from tests.helpers.ui_fixtures import make_photos

    photos, data = tmp_path / "photos", tmp_path / "data"
    make_photos(photos, n=2)
    argv = ["index", "--data", str(data), "--db", url, "--model", str(tiny_model_dir), str(photos)]
    assert main([*argv, "--workers", "0", "--backend", "torch", "--no-progress"]) == 2
    assert "in-memory database" in one_error_line(capsys)
    assert not data.exists()  # nothing indexed, nothing created
