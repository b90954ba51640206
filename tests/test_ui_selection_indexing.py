"""Add photos from the page (ui/indexing.py): the folder check, and `dualens index` run by the server in
a child process with its progress, its one-line error and one run at a time (a tiny collection, the
real indexer, a tiny random model)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from indexer.core.errors import UsageError
from indexer.core.settings import CollectionPaths
from indexer.core.storage.locks import collection_lock
from tests.helpers.ui_fixtures import build_collection, make_photos
from ui import indexing
from ui.indexing_view import status_line


def test_a_folder_is_refused_in_one_line_unless_it_is_a_readable_folder_the_server_may_read(
    tmp_path: Path,
) -> None:
    allowed, elsewhere, data = tmp_path / "allowed", tmp_path / "elsewhere", tmp_path / "allowed" / "data"
    (allowed / "photos").mkdir(parents=True)
    elsewhere.mkdir()
    data.mkdir()
    (allowed / "link").symlink_to(elsewhere)
    assert indexing.check_folder(str(allowed / "photos"), [allowed], data) == (allowed / "photos").resolve()
    refused = {
        "": "type the full path",
        "photos": "is not a full path",
        str(allowed / ".." / "elsewhere"): "is not a full path",
        str(allowed / "missing"): "there is no folder",
        str(elsewhere): "to allow others",  # and how: DUALENS_UI_ADD_FOLDERS
        str(allowed / "link"): "outside the folders this server may read",  # a link out of it
        str(data): "holds the collection's own data folder",
        str(allowed): "holds the collection's own data folder",
    }
    for raw, said in refused.items():
        with pytest.raises(UsageError) as error:
            indexing.check_folder(raw, [allowed], data)
        assert said in str(error.value) and "\n" not in str(error.value), raw


def test_the_allowed_folders_come_from_the_environment_else_home_and_the_roots(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(indexing.ALLOWED_ENV, raising=False)
    assert indexing.allowed_folders(["/photos"]) == [Path.home(), Path("/photos")]
    monkeypatch.setenv(indexing.ALLOWED_ENV, f"{tmp_path}:/srv/pictures")
    assert indexing.allowed_folders(["/photos"]) == [tmp_path, Path("/srv/pictures")]


def test_the_status_line_says_done_of_total_the_rate_and_the_time_left() -> None:
    now = time.monotonic()
    running = indexing.Progress("/p", started=now - 9, done=10, total=30, planned_at=now - 5)
    line = status_line(running)
    assert line.startswith("Indexing: 10 of 30 photos · 2.0 photos/s · about 10 s left"), line
    assert status_line(indexing.Progress("/p", started=now)).startswith("Starting")
    failed = indexing.Progress("/p", started=now, finished=now, error="no photos")
    assert status_line(failed) == "Not added: no photos"
    reading = indexing.Progress("/p", started=now, done=30, total=30, text_done=4, text_total=30)
    assert status_line(reading) == "Reading the text in the photos: 4 of 30"  # not "30 of 30, 0 s left"


def _wait(run: indexing.IndexRun, timeout: float = 240.0) -> indexing.Progress:
    deadline = time.monotonic() + timeout
    while run.progress().running:
        assert time.monotonic() < deadline, "the indexing run did not end"
        time.sleep(0.2)
    return run.progress()


@pytest.fixture
def collection(tmp_path: Path, tiny_model_dir: Path) -> tuple[Path, Path]:
    """(data directory, a new folder of 3 photos not in it yet)."""
    data = tmp_path / "data"
    make_photos(tmp_path / "photos", n=4)
    build_collection(data, tmp_path / "photos", tiny_model_dir)
    make_photos(tmp_path / "new", n=3, seed=7)
    return data, tmp_path / "new"


def test_a_started_run_indexes_the_folder_with_progress_and_a_second_start_is_refused(
    collection: tuple[Path, Path],
) -> None:
    data, new = collection
    run = indexing.start(str(data), new)
    with pytest.raises(UsageError, match="a run is in progress"):
        indexing.start(str(data), new)
    done = _wait(run)
    assert done.error is None, done.error
    assert (done.done, done.total) == (3, 3) and done.rate is not None
    assert done.summary.startswith("indexed 3,")
    assert indexing.latest(str(data)) is run
    again = _wait(indexing.start(str(data), new))  # finished: another may start, and has nothing to do
    assert again.error is None and again.total == 0


def test_a_run_that_cannot_start_says_why_in_one_line(collection: tuple[Path, Path]) -> None:
    data, new = collection
    with collection_lock(CollectionPaths.from_option(data, None)):  # an indexer in a terminal
        failed = _wait(indexing.start(str(data), new))
    assert failed.error is not None and "another dualens indexer" in failed.error
    assert "\n" not in failed.error and failed.total is None


def test_with_api_the_page_says_adding_photos_is_not_available() -> None:
    from streamlit.testing.v1 import AppTest

    def page() -> None:
        from ui import indexing_view
        from ui.config import UiConfig
        from ui.remote import RemoteBackend

        backend = RemoteBackend("http://service.invalid", UiConfig())
        try:
            indexing_view.sidebar(backend, "/nowhere")
        finally:
            backend.close()

    at = AppTest.from_function(page, default_timeout=30).run()
    assert not at.exception, at.exception
    said = " ".join(m.value for m in at.sidebar.markdown)
    assert "Indexing from the page is not available with --api" in said
    assert not [t for t in at.text_input if t.key == "add_folder"]
