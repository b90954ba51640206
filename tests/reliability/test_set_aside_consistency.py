"""Moving duplicate copies aside and undoing it are writers of the collection: `dualens check` passes
right after either, in any order with `dualens index`; an undo after a restart puts the rows back;
a read-only collection or a running indexer is refused before any file moves."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from indexer.core.errors import CollectionError
from tests.helpers.ui_fixtures import build_collection, make_photos
from ui.backend import Backend, SearchRequest
from ui.config import UiConfig


@pytest.fixture
def copies(tmp_path: Path, tiny_model_dir: Path, database: str | None) -> tuple[Path, Path]:
    """Six photos and a byte-identical copy of the first in another folder, indexed."""
    photos, data = tmp_path / "photos", tmp_path / "data"
    made = make_photos(photos, n=6)
    copy = photos / "backup" / made[0].name
    copy.parent.mkdir()
    shutil.copy2(made[0], copy)
    build_collection(data, photos, tiny_model_dir, database)
    return data, copy


def _cli(*args: str) -> int:
    from ui.cli import main

    return main(list(args))


def _check(data: Path, database: str | None) -> int:
    return _cli("check", "--data", str(data), *(["--db", database] if database else []))


def _ids(backend: Backend) -> list[int]:
    return [h.id for h in backend.run(SearchRequest("text", text="a photo", limit=50)).hits]


def _the_copy(backend: Backend) -> tuple[int, str]:
    (moved,) = [m for g in backend.duplicates() for m in g.copies if m.exact]
    return moved.id, moved.path


def test_check_passes_right_after_a_move_aside_and_right_after_its_undo(
    copies: tuple[Path, Path], tmp_path: Path, database: str | None
) -> None:
    data, _ = copies
    backend = Backend.open(data, UiConfig())
    try:
        photo_id, _ = _the_copy(backend)
        report = backend.quarantine([photo_id], tmp_path / "quarantine")
        assert len(report.moved) == 1
        assert _check(data, database) == 0
        undone = backend.undo(report.manifest)
        assert undone.back_in_collection == 1
        assert _check(data, database) == 0
        assert photo_id in _ids(backend)
    finally:
        backend.close()


def test_an_undo_after_an_index_run_puts_the_photos_back_searchable_and_check_passes(
    copies: tuple[Path, Path], tmp_path: Path, tiny_model_dir: Path, database: str | None
) -> None:
    data, copy = copies
    db = ["--db", database] if database else []
    backend = Backend.open(data, UiConfig())
    try:
        photo_id, path = _the_copy(backend)
        report = backend.quarantine([photo_id], tmp_path / "quarantine")
        photos = copy.parents[1]
        assert _cli("index", "--data", str(data), *db, "--model", str(tiny_model_dir), str(photos)) == 0
        undone = backend.undo(report.manifest)
        assert undone.restored == [path] and undone.back_in_collection == 1
        assert _check(data, database) == 0
        backend.refresh()
        assert photo_id in _ids(backend)
    finally:
        backend.close()


def test_an_undo_after_a_restart_puts_the_rows_back_into_the_collection(
    copies: tuple[Path, Path], tmp_path: Path, database: str | None
) -> None:
    data, _ = copies
    first = Backend.open(data, UiConfig())
    try:
        photo_id, path = _the_copy(first)
        report = first.quarantine([photo_id], tmp_path / "quarantine")
    finally:
        first.close()
    restarted = Backend.open(data, UiConfig())
    try:
        undone = restarted.undo(report.manifest)
        assert undone.restored == [path] and undone.back_in_collection == 1
        assert restarted.photo(photo_id) is not None and photo_id in _ids(restarted)
        assert restarted.stats().n_indexed == 7
        assert _check(data, database) == 0
    finally:
        restarted.close()


def test_a_read_only_collection_refuses_a_move_aside_before_any_file_moves(
    copies: tuple[Path, Path], tmp_path: Path, database: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database:
        pytest.skip("a read-only SQLite file; a server's database is made read-only by its owner")
    data, _ = copies
    # as a user without write permission sees it (the tests may run as root, whom chmod does not stop)
    monkeypatch.setattr(
        "indexer.core.storage.database.read_only_sqlite_uri", lambda path: f"file:{quote(str(path))}?mode=ro"
    )
    backend = Backend.open(data, UiConfig())
    try:
        photo_id, path = _the_copy(backend)
        with pytest.raises(CollectionError, match="cannot be written"):
            backend.quarantine([photo_id], tmp_path / "quarantine")
        assert Path(path).is_file() and not (tmp_path / "quarantine").exists()
        assert backend.photo(photo_id) is not None
    finally:
        backend.close()


def test_a_move_aside_while_an_indexer_runs_is_refused_before_any_file_moves(
    copies: tuple[Path, Path], tmp_path: Path
) -> None:
    data, _ = copies
    lock = data / ".index.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        backend = Backend.open(data, UiConfig())
        try:
            photo_id, path = _the_copy(backend)
            started = time.monotonic()
            with pytest.raises(CollectionError, match="indexer"):
                backend.quarantine([photo_id], tmp_path / "quarantine")
            assert time.monotonic() - started < 10
            assert Path(path).is_file() and not (tmp_path / "quarantine").exists()
        finally:
            backend.close()
    finally:
        holder.kill()
        holder.wait()


def test_an_undo_whose_rows_are_not_kept_says_they_return_at_the_next_index_run(
    copies: tuple[Path, Path], tmp_path: Path
) -> None:
    from ui.duplicates_view import undo_note

    data, _ = copies
    first = Backend.open(data, UiConfig())
    try:
        photo_id, path = _the_copy(first)
        report = first.quarantine([photo_id], tmp_path / "quarantine")
    finally:
        first.close()
    (report.manifest.parent / "rows.json").unlink()  # e.g. a quarantine made by an older release
    restarted = Backend.open(data, UiConfig())
    try:
        undone = restarted.undo(report.manifest)
        assert undone.restored == [path] and undone.back_in_collection == 0
        assert restarted.photo(photo_id) is None
        note = undo_note(undone)
        assert "in the collection again" not in note and "next `dualens index`" in note
    finally:
        restarted.close()


def _count(data: Path, database: str | None) -> int:
    from indexer.core.storage.collection import Collection

    with Collection.open(data, db_url=database) as collection:
        return collection.info().n_indexed


def test_the_cli_quarantine_takes_the_copy_out_at_once_and_its_undo_puts_it_back(
    copies: tuple[Path, Path], tmp_path: Path, database: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    data, copy = copies
    db = ["--db", database] if database else []
    before = _count(data, database)
    assert _cli("duplicates", "--data", str(data), *db, "--quarantine", str(tmp_path / "q")) == 0
    assert not copy.exists()
    assert _count(data, database) == before - 1  # no `dualens index` needed
    assert _check(data, database) == 0
    assert "dualens index" not in capsys.readouterr().err
    (manifest,) = (tmp_path / "q").glob("dualens-*/manifest.json")
    assert _cli("duplicates", "--data", str(data), *db, "--undo", str(manifest)) == 0
    assert "back in the collection" in capsys.readouterr().out
    assert copy.exists() and _count(data, database) == before
    assert _check(data, database) == 0


@pytest.mark.sqlite_only  # a second collection of its own: another SQLite file beside the first
def test_an_undo_into_another_collection_restores_the_files_but_not_foreign_rows(
    copies: tuple[Path, Path], tmp_path: Path, tiny_model_dir: Path, database: str | None,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    data, copy = copies
    db = ["--db", database] if database else []
    assert _cli("duplicates", "--data", str(data), *db, "--quarantine", str(tmp_path / "q")) == 0
    other_photos, other = tmp_path / "other-photos", tmp_path / "other"
    make_photos(other_photos, n=2)
    build_collection(other, other_photos, tiny_model_dir, None)  # a SQLite collection of its own
    (manifest,) = (tmp_path / "q").glob("dualens-*/manifest.json")
    capsys.readouterr()
    assert _cli("duplicates", "--data", str(other), "--undo", str(manifest)) == 0
    assert copy.exists()
    assert _count(other, None) == 2  # the first collection's row is not put into this one
    assert "return at the next `dualens index`" in capsys.readouterr().out


def test_an_undo_brings_back_the_words_read_in_the_photo(
    copies: tuple[Path, Path], tmp_path: Path, database: str | None
) -> None:
    from indexer.core.storage.collection import Collection
    from indexer.core.storage.text import TextResult, TextStatus

    data, copy = copies
    db = ["--db", database] if database else []
    with Collection.open(data, db_url=database) as c:
        photo = c.photo_by_path(copy)
        assert photo is not None
        read = TextResult(photo.id, photo.content_hash, "test-engine 1", TextStatus.OK, "INVOICE 2023")
        c.write_texts([read])
    assert _cli("duplicates", "--data", str(data), *db, "--quarantine", str(tmp_path / "q")) == 0
    with Collection.open(data, db_url=database) as c:
        assert c.text_matches("invoice", 5) == []
    (manifest,) = (tmp_path / "q").glob("dualens-*/manifest.json")
    assert _cli("duplicates", "--data", str(data), *db, "--undo", str(manifest)) == 0  # through rows.json
    with Collection.open(data, db_url=database) as c:
        assert [m.photo_id for m in c.text_matches("invoice 2023", 5)] == [photo.id]
    assert _check(data, database) == 0


@pytest.mark.sqlite_only  # a second collection of its own: another SQLite file beside the first
def test_an_undo_given_another_collection_leaves_the_kept_rows_for_the_right_one(
    copies: tuple[Path, Path], tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, copy = copies
    before = _count(data, None)
    assert _cli("duplicates", "--data", str(data), "--quarantine", str(tmp_path / "q")) == 0
    other_photos, other = tmp_path / "other-photos", tmp_path / "other"
    make_photos(other_photos, n=2)
    build_collection(other, other_photos, tiny_model_dir, None)
    (manifest,) = (tmp_path / "q").glob("dualens-*/manifest.json")
    assert _cli("duplicates", "--data", str(other), "--undo", str(manifest)) == 0  # the wrong collection
    assert copy.exists() and _count(data, None) == before - 1
    capsys.readouterr()
    assert _cli("duplicates", "--data", str(data), "--undo", str(manifest)) == 0  # then the right one
    assert "1 back in the collection" in capsys.readouterr().out
    assert _count(data, None) == before  # its row came back without a `dualens index`
    assert _check(data, None) == 0
    assert _cli("duplicates", "--data", str(data), "--undo", str(manifest)) == 0  # again: nothing more
    assert _count(data, None) == before
