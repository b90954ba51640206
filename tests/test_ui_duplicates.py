"""The duplicates review page (Streamlit AppTest, the real indexer, a tiny model): groups shown with
their keeper, checked copies moved to a quarantine folder, and the move undone."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.ui_fixtures import build_collection, make_photos

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")


@pytest.fixture
def world(tmp_path: Path, tiny_model_dir: Path) -> tuple[Path, Path, Path]:
    photos, data = tmp_path / "photos", tmp_path / "data"
    made = make_photos(photos, n=6)
    copy = photos / "backup" / "copy of photo_000.jpg"
    copy.parent.mkdir()
    shutil.copy2(made[0], copy)
    build_collection(data, photos, tiny_model_dir)
    return data, made[0], copy


@pytest.fixture(autouse=True)
def _fresh_backends() -> Iterator[None]:
    from ui.page import get_backend

    yield
    get_backend.clear()


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown]
    for kind in ("info", "warning", "error", "success", "caption"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def _open_review(data: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("DUALENS_DATA", str(data))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["view"] = "duplicates"  # the review page is in the URL
    at.run()
    assert not at.exception, at.exception
    return at


def _copy_boxes(at: AppTest) -> list:  # type: ignore[type-arg]
    """The review page's checkbox of each copy."""
    return [c for c in at.checkbox if c.key and c.key.startswith("dup-")]


def _photos(original: Path) -> list[Path]:
    return sorted(original.parents[1].rglob("*.jpg"))


def test_review_page_moves_checked_copies_aside_and_undoes_it(
    world: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, original, copy = world
    photos = _photos(original)
    at = _open_review(data, monkeypatch)
    assert "Group 1" in _texts(at) and "**Keep**" in _texts(at)
    boxes = _copy_boxes(at)
    # the tiny random model finds every photo alike; the byte-identical copy is labelled as such, and
    # only it starts checked: a merely similar photo may be another shot (issue #27, item 14)
    (identical,) = [c for c in boxes if "identical" in c.label]
    assert len(boxes) > 1 and [c.value for c in boxes] == [c is identical for c in boxes]
    moved = Path(identical.help)
    assert moved in (original, copy)
    for box in boxes:
        if box is not identical:
            box.uncheck()
    at.run()
    assert at.button(key="dup-move").label == "Move 1 checked copies aside"
    before = moved.read_bytes()
    at.button(key="dup-move").click().run()
    assert not at.exception, at.exception
    assert "Moved 1 photo(s)" in _texts(at)
    assert [p for p in photos if not p.exists()] == [moved]
    assert list((data / "quarantine").rglob(moved.name))  # the default: in the data directory, never scanned
    at.button(key="dup-undo").click().run()
    assert not at.exception, at.exception
    assert "Put back 1 photo(s)" in _texts(at)
    assert moved.read_bytes() == before
    assert all(p.exists() for p in photos)


def test_unchecked_copies_stay_in_place(
    world: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, original, _ = world
    photos = _photos(original)
    at = _open_review(data, monkeypatch)
    for box in _copy_boxes(at):
        box.uncheck()
    at.run()
    assert at.button(key="dup-move").disabled
    assert all(p.exists() for p in photos)
