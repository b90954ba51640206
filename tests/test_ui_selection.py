"""Multi-select on the results (ui/selection.py): the zip's names and bytes, and the page through
Streamlit's AppTest on a tiny collection (the real indexer, a tiny model): the selection bar, the
selection kept over Show more and sorting and dropped on a new query, Move aside with its
confirmation, and Undo."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import grid_apptest
from tests.helpers.ui_fixtures import build_collection, make_photos
from ui.selection import zip_bytes, zip_names, zip_note

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")


def test_zip_names_are_the_file_names_numbered_where_they_repeat() -> None:
    names = zip_names(["/a/trip/IMG_1.jpg", "/b/IMG_1.jpg", "/c/img_1.jpg", "/d/x.png", "/e/IMG_1.jpg"])
    assert names == ["IMG_1.jpg", "IMG_1 (2).jpg", "img_1 (3).jpg", "x.png", "IMG_1 (4).jpg"]
    assert all("/" not in n for n in names)


def test_a_zip_holds_the_originals_byte_for_byte_under_their_names(tmp_path: Path) -> None:
    files = [tmp_path / "one" / "a.jpg", tmp_path / "two" / "a.jpg"]
    for n, f in enumerate(files):
        f.parent.mkdir()
        f.write_bytes(bytes(range(256)) * (n + 3))
    with zipfile.ZipFile(io.BytesIO(zip_bytes(files, zip_names([str(f) for f in files])))) as archive:
        assert archive.namelist() == ["a.jpg", "a (2).jpg"]
        assert [archive.read(n) for n in archive.namelist()] == [f.read_bytes() for f in files]


def test_a_selection_over_the_zip_cap_is_not_zipped_and_the_bar_says_so() -> None:
    mb = 1024 * 1024
    assert zip_note(3, 150 * mb, 200 * mb) == ("A zip of the 3 originals, 150.0 MB (up to 200.0 MB).", True)
    note, fits = zip_note(40, 201 * mb, 200 * mb)
    assert not fits and note.startswith("The 40 originals are 201.0 MB, over the 200.0 MB a zip may hold")
    assert "1 photo(s) are no longer on disk" in zip_note(2, mb, 200 * mb, missing=1)[0]


@pytest.fixture
def app(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    from ui.page import get_backend

    photos, data = tmp_path / "photos", tmp_path / "data"
    make_photos(photos, n=10)
    build_collection(data, photos, tiny_model_dir)
    monkeypatch.setenv("DUALENS_DATA", str(data))
    monkeypatch.setenv("DUALENS_UI_PAGE_SIZE", "4")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_input(key="q").input("a photo").run()
    assert not at.exception, at.exception
    yield at
    get_backend.clear()


def _boxes(at: AppTest) -> list[int]:
    """The photos of the grids, each with its Select (ui/grid_component.py)."""
    return grid_apptest.ids(at)


def _checked(at: AppTest) -> set[int]:
    """The photos the grids show as selected."""
    return {int(i) for grid in grid_apptest.grids(at) for i in grid["selected"]}


def _check(at: AppTest, photo_id: int) -> None:
    grid_apptest.select(at, [photo_id])


def _said(at: AppTest) -> str:
    parts = [m.value for m in at.markdown]
    for kind in ("success", "warning", "caption", "error"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def test_the_selection_bar_counts_the_selected_photos_and_clears(app: AppTest) -> None:
    assert "selected" not in _said(app)
    for box in _boxes(app)[:3]:
        _check(app, box)
    assert "3 selected" in _said(app) and "A zip of the 3 originals" in _said(app)
    assert [b in _checked(app) for b in _boxes(app)] == [True, True, True, False]
    app.button(key="sel-clear").click().run()
    assert "selected" not in _said(app) and not _checked(app)


def test_the_selection_survives_show_more_and_sorting_and_a_new_query_drops_it(app: AppTest) -> None:
    first, second = _boxes(app)[:2]
    _check(app, first)
    _check(app, second)
    chosen = {first, second}
    app.button(key="more").click().run()
    assert len(_boxes(app)) == 8 and _checked(app) == chosen
    app.radio(key="f_sort").set_value("date").run()  # the tiny model's matches are all weak: none shown
    assert "2 selected" in _said(app)
    app.radio(key="f_sort").set_value("relevance").run()
    assert "2 selected" in _said(app) and _checked(app) == chosen
    app.text_input(key="q").input("another photo").run()
    assert "selected" not in _said(app) and not _checked(app)


def test_move_aside_asks_first_then_moves_the_selection_out_and_undo_brings_it_back(
    app: AppTest, tmp_path: Path
) -> None:
    photos = sorted((tmp_path / "photos").rglob("*.jpg"))
    for box in _boxes(app)[:2]:
        _check(app, box)
    app.button(key="sel-move").click().run()
    assert "Move 2 photo(s) to a new folder" in _said(app) and all(p.exists() for p in photos)
    app.button(key="sel-move-yes").click().run()
    assert not app.exception, app.exception
    assert "Moved 2 photo(s) aside" in _said(app)
    gone = [p for p in photos if not p.exists()]
    assert len(gone) == 2 and list((tmp_path / "data" / "quarantine").rglob(gone[0].name))
    assert "10 photos" not in _said(app) and "of 8 photos" in _said(app)  # out of the collection at once
    app.button(key="sel-undo").click().run()
    assert not app.exception, app.exception
    assert "Put back 2 photo(s), 2 in the collection again" in _said(app)
    assert all(p.exists() for p in photos) and "of 10 photos" in _said(app)
