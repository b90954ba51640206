"""`dualens search` starts its text tower before the query path's libraries load (search/prestart.py):
the warmed encoder is the one the search uses, a peek is never trusted, and an error of the background
start surfaces as the same typed one-line error as without it."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.core.errors import ModelMismatchError
from indexer.core.models import DualEncoder
from indexer.core.settings import Settings
from search import prestart
from search import searcher as searcher_module
from search.searcher import Searcher
from ui.cli import main


@pytest.fixture(autouse=True)
def _nothing_started() -> Iterator[None]:
    prestart.claim("", None)  # no other test's start is claimed here, nor this one's later
    yield
    prestart.claim("", None)


def _copy(world: tuple[Path, Path], tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(world[0], data)
    return data


def _record_model(data: Path, model_id: str) -> None:
    with sqlite3.connect(data / "dualens.sqlite") as db:
        db.execute("UPDATE collection_info SET value = ? WHERE key = 'model_id'", (model_id,))


def test_the_search_uses_the_encoder_warmed_before_the_collection_opened(
    api_world: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[DualEncoder] = []
    real = prestart.query_encoder

    def warming(model_id: str, backend: str | None, precision: str = "fp32") -> DualEncoder:
        made.append(real(model_id, backend, precision))
        return made[-1]

    def never(model_id: str, backend: str | None, precision: str = "fp32") -> DualEncoder:
        raise AssertionError("the query path made a second encoder")

    monkeypatch.setattr(prestart, "query_encoder", warming)
    monkeypatch.setattr(searcher_module, "query_encoder", never)
    settings = Settings.resolve(api_world[0], None, "auto")
    prestart.start(settings)
    with Searcher.open(settings.data_dir, backend=settings.backend, prefetch_text=True) as searcher:
        assert len(made) == 1 and searcher.encoder is made[0]
        assert searcher.search("a photo", k=3)


def test_a_warmed_encoder_of_another_model_or_backend_is_not_used(api_world: tuple[Path, Path]) -> None:
    settings = Settings.resolve(api_world[0], None, "auto")
    model_id = prestart.peek_model_id(settings.paths.database)
    assert model_id is not None
    prestart.start(settings)
    assert prestart.claim("another-model", "auto") is None
    prestart.start(settings)
    assert prestart.claim(model_id, "torch") is None
    prestart.start(settings)
    claimed = prestart.claim(model_id, "auto")
    assert claimed is not None and claimed.model_id == model_id
    assert prestart.claim(model_id, "auto") is None  # once


def test_nothing_starts_for_a_database_server_or_a_missing_collection(tmp_path: Path) -> None:
    prestart.start(Settings.resolve(tmp_path, "postgresql://nobody@127.0.0.1:1/none", "auto"))
    assert prestart._started is None
    prestart.start(Settings.resolve(tmp_path / "none", None, "auto"))
    assert prestart._started is None


def test_a_peek_of_a_file_that_is_no_collection_finds_no_model(tmp_path: Path) -> None:
    junk = tmp_path / "dualens.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    assert prestart.peek_model_id(junk) is None
    sqlite3.connect(tmp_path / "empty.sqlite").close()
    assert prestart.peek_model_id(tmp_path / "empty.sqlite") is None
    assert prestart.peek_model_id(tmp_path / "missing.sqlite") is None


@pytest.mark.parametrize(
    ("model_id", "error"),
    [
        ("dualens-default-v1", "an older version of the built-in default model"),
        ("/no/such/model/folder", "/no/such/model/folder"),
    ],
    ids=["old-default", "missing-model"],
)
def test_an_error_of_the_background_start_is_the_same_one_line_error(
    api_world: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    model_id: str,
    error: str,
) -> None:
    data = _copy(api_world, tmp_path)
    _record_model(data, model_id)
    argv = ["search", "--data", str(data), "a photo"]
    code = main(argv)
    warmed = capsys.readouterr().err
    monkeypatch.setattr(prestart, "start", lambda settings: None)
    assert main(argv) == code != 0
    cold = capsys.readouterr().err
    assert warmed == cold
    assert warmed.startswith("dualens: error: ") and error in warmed and warmed.count("\n") == 1
    assert "Traceback" not in warmed
    if model_id.startswith("dualens-default"):
        assert code == ModelMismatchError.exit_code


def test_the_ui_server_warms_up_with_the_text_tower_started_before_its_page_imports(
    api_world: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ui import launch

    def never(model_id: str, backend: str | None, precision: str = "fp32") -> DualEncoder:
        raise AssertionError("the UI's backend made a second encoder")

    monkeypatch.delenv("DUALENS_API_URL", raising=False)
    monkeypatch.delenv("DUALENS_DB_URL", raising=False)
    monkeypatch.setattr(searcher_module, "query_encoder", never)
    launch._warm(str(api_world[0]))
    assert launch.READY in capsys.readouterr().err


@pytest.mark.parametrize("command", ["search", "similar", None], ids=["search", "similar", "every-command"])
def test_building_the_parser_loads_no_database_faiss_or_searcher(command: str | None) -> None:
    import subprocess
    import sys

    script = (
        "import sys; from ui.cli import build_parser; build_parser(sys.argv[1] or None); "
        "heavy = ('sqlalchemy', 'faiss', 'onnxruntime', 'search.searcher'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, command or ""],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"  # the text tower can start before any of them loads
