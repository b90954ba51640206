"""Issue #28, the defects below the page: one-line service errors (items 2 and 17), copies moved aside
leave the collection at once and come back on undo (item 6), a mistyped command gets a suggestion
(item 18), the camera's make said once and the documented thumbnail size (item 19)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest

from indexer.core.errors import CollectionError, QueryError
from search import Filters
from tests.helpers.ui_fixtures import build_collection, make_photos
from ui.backend import Backend, SearchRequest
from ui.config import UiConfig
from ui.remote import RemoteBackend

REPO = Path(__file__).resolve().parents[1]


# ---- item 18: the closest command ----


def test_a_mistyped_command_gets_the_closest_one_suggested_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ui.cli import main

    assert main(["serach", "a red car"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean `search`?" in err
    assert "build-default-model" not in err  # not the list of every command
    assert main(["search", "--backend", "tourch", "x"]) == 2
    assert "did you mean `torch`?" in capsys.readouterr().err


# ---- items 2 and 17: what the page shows of the service's failures ----


def _remote_answering(handler: httpx.MockTransport) -> RemoteBackend:
    remote = RemoteBackend("http://service.invalid", UiConfig())
    remote._client = httpx.Client(base_url=remote.url, transport=handler)
    return remote


def test_a_request_the_service_refuses_never_shows_its_raw_validation_message() -> None:
    raw = "k: Input should be less than or equal to 200"
    body = {"error": {"code": "invalid_request", "message": raw}}
    remote = _remote_answering(httpx.MockTransport(lambda _: httpx.Response(422, json=body)))
    try:
        with pytest.raises(QueryError) as refused:
            remote.run(SearchRequest("text", text="a photo", limit=24))
    finally:
        remote.close()
    message = str(refused.value)
    assert "Input should" not in message and "k:" not in message and "\n" not in message
    assert "could not answer this request" in message


def test_a_failing_service_is_one_sentence_without_its_internals() -> None:
    body = {"error": {"code": "internal", "message": "Traceback (most recent call last): ..."}}
    remote = _remote_answering(httpx.MockTransport(lambda _: httpx.Response(500, json=body)))
    try:
        with pytest.raises(CollectionError) as failed:
            remote.stats()
    finally:
        remote.close()
    assert "Traceback" not in str(failed.value) and "\n" not in str(failed.value)


def test_a_service_that_is_down_is_one_friendly_line_without_the_socket_error() -> None:
    with pytest.raises(CollectionError) as down:
        RemoteBackend.open("http://127.0.0.1:9", UiConfig())
    message = str(down.value)
    assert message.startswith("the dualens service at http://127.0.0.1:9 is not answering")
    assert "Errno" not in message and "refused" not in message.lower()


# ---- item 19 ----


def test_the_camera_make_is_said_once() -> None:
    from ui.views import camera_text

    assert camera_text("Canon", "Canon EOS 10D") == "Canon EOS 10D"
    assert camera_text("NIKON CORPORATION", "NIKON D70") == "NIKON D70"
    assert camera_text("Apple", "iPhone 12") == "Apple iPhone 12"
    assert camera_text(None, None) == "unknown"


def test_the_docs_give_the_grid_thumbnail_size_that_is_served() -> None:
    usage = (REPO / "docs" / "usage.md").read_text(encoding="utf-8")
    stated = re.search(r"`DUALENS_UI_THUMB_PX` \((\d+)\)", usage)
    assert stated is not None and int(stated[1]) == UiConfig().thumb_px


# ---- item 6: moved copies leave the collection at once ----


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


def _ids(backend: Backend) -> list[int]:
    return [h.id for h in backend.run(SearchRequest("text", text="a photo", limit=50)).hits]


def test_copies_moved_aside_leave_the_results_at_once_and_undo_brings_them_back(
    copies: tuple[Path, Path], tmp_path: Path
) -> None:
    data, _ = copies
    backend = Backend.open(data, UiConfig())
    try:
        (moved,) = [m for g in backend.duplicates() for m in g.copies if m.exact]
        assert moved.id in _ids(backend) and backend.stats().n_indexed == 7
        before = backend.run(SearchRequest("text", text="a photo")).total
        report = backend.quarantine([moved.id], tmp_path / "quarantine")
        assert [e.original for e in report.moved] == [moved.path]
        assert moved.id not in _ids(backend)  # no broken image among the results
        assert backend.photo(moved.id) is None and backend.stats().n_indexed == 6
        assert backend.run(SearchRequest("text", text="a photo")).total == before - 1  # type: ignore[operator]
        folder = str(Path(moved.path).parent)
        assert backend.run(SearchRequest("text", text="a photo", filters=Filters(folder=folder))).hits == []
        undone = backend.undo(report.manifest)
        assert undone.restored == [moved.path] and Path(moved.path).is_file()
        assert moved.id in _ids(backend) and backend.photo(moved.id) is not None
        assert backend.run(SearchRequest("text", text="a photo")).total == before
    finally:
        backend.close()


def test_the_next_index_run_after_a_move_leaves_a_consistent_collection(
    copies: tuple[Path, Path], tmp_path: Path, tiny_model_dir: Path, database: str | None
) -> None:
    from ui.cli import main

    data, copy = copies
    backend = Backend.open(data, UiConfig())
    try:
        (moved,) = [m for g in backend.duplicates() for m in g.copies if m.exact]
        backend.quarantine([moved.id], tmp_path / "quarantine")
    finally:
        backend.close()
    db = ["--db", database] if database else []
    photos = copy.parents[1]
    assert main(["index", "--data", str(data), *db, "--model", str(tiny_model_dir), str(photos)]) == 0
    assert main(["check", "--data", str(data), *db]) == 0
