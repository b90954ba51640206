"""Path safety: nothing outside the indexed roots can be read through the search API or the UI's code path.

A secret image lies next to the indexed root; it is reached by `../` paths, absolute paths, a
symlinked file and a symlinked folder inside the root, query syntax (`@path`, bare `x.jpg`), and a
tampered database row. Every route must be refused with a DualensError, and the secret file must
never be opened (every PIL open is recorded).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from indexer.core.errors import DualensError, NotFoundError, QueryError, UnsafePathError
from indexer.core.imaging import is_image_name
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo
from search import Filters, Searcher
from tests.helpers.faults import index_in_process, make_photos
from tests.helpers.images import pattern, save_jpeg
from ui.backend import Backend, SearchRequest
from ui.config import UiConfig


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path, Path]:
    """(data, root, outside): 6 indexed photos in root; a secret photo in a sibling folder."""
    base = tmp_path_factory.mktemp("paths")
    root, outside, data = base / "photos", base / "private", base / "data"
    make_photos(root, 6, seed=21)
    index_in_process(data, [root], tiny_model_dir)
    save_jpeg(outside / "secret.jpg", pattern((40, 30), seed=999))
    (root / "d0" / "link.jpg").symlink_to(outside / "secret.jpg")  # created after indexing
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    return data, root, outside


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path PIL is asked to open, resolved."""
    seen: list[str] = []
    real = Image.open

    def recording(fp, *args, **kwargs):
        if isinstance(fp, str | os.PathLike):
            seen.append(os.path.realpath(fp))
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", recording)
    return seen


def _routes_to_the_secret(root: Path, outside: Path) -> list[str]:
    secret = outside / "secret.jpg"
    return [
        str(secret),
        f"{root}/../private/secret.jpg",
        f"{root}/d0/../../private/secret.jpg",
        str(root / "d0" / "link.jpg"),
        str(root / "linkdir" / "secret.jpg"),
        os.path.relpath(secret),
        "/etc/passwd",
        "/proc/self/environ",
    ]


@pytest.fixture(scope="module")
def searcher(layout: tuple[Path, Path, Path]) -> Iterator[Searcher]:
    with Searcher.open(layout[0]) as s:  # the API default: external files refused
        yield s


def test_search_api_refuses_every_route_out_of_the_roots(
    searcher: Searcher, layout: tuple[Path, Path, Path], opened: list[str]
) -> None:
    _, root, outside = layout
    for route in _routes_to_the_secret(root, outside):
        with pytest.raises((UnsafePathError, NotFoundError)):
            searcher.search_image(route, k=3)
        with pytest.raises(NotFoundError):
            searcher.similar(route, k=3)  # only indexed photos, looked up in the database
        with pytest.raises(DualensError):
            searcher.classify(route, ["cat", "dog"])
        for query in (f"@{route}", f'@"{route}" + "a red car"', f'"a red car" - 0.5:@"{route}"'):
            with pytest.raises((UnsafePathError, NotFoundError, QueryError)):
                searcher.search(query, k=3)
    assert str((outside / "secret.jpg").resolve()) not in opened
    assert not any(p.startswith(str(outside.resolve())) or p.startswith("/etc") for p in opened)


def test_search_api_reads_a_query_image_inside_the_roots(
    searcher: Searcher, layout: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, root, _ = layout
    unindexed = save_jpeg(root / "d1" / "not-yet-indexed.jpg", pattern((40, 30), seed=7))
    try:
        assert len(searcher.search_image(unindexed, k=3)) == 3  # the guard does not refuse legitimate files
    finally:
        unindexed.unlink()


def test_folder_filter_cannot_widen_the_search_beyond_the_roots(
    searcher: Searcher, layout: tuple[Path, Path, Path]
) -> None:
    _, root, outside = layout
    indexed = {str(p) for p in root.rglob("p*.jpg")}
    for folder in ("..", "../private", str(outside), "/", "%", "d0/../..", "/etc"):
        hits = searcher.search("a red car", k=10, filters=Filters(folder=folder))
        assert {h.path for h in hits} <= indexed


@pytest.fixture
def backend(layout: tuple[Path, Path, Path]) -> Iterator[Backend]:
    b = Backend.open(layout[0], UiConfig())
    yield b
    b.close()


def test_ui_backend_refuses_paths_in_queries_and_never_opens_them(
    backend: Backend, layout: tuple[Path, Path, Path], opened: list[str]
) -> None:
    _, root, outside = layout
    for route in _routes_to_the_secret(root, outside):
        for text in (f"@{route}", f'@"{route}" + "a red car"', f'{route} + "x"'):
            if not is_image_name(route) and not text.startswith("@"):
                # `/etc/passwd + "x"` names no image: searched as the text it is (quotes dropped)
                assert backend.run(SearchRequest(kind="text", text=text)).hits
                continue
            with pytest.raises(DualensError):
                backend.run(SearchRequest(kind="text", text=text))
    # an indexed photo by its full path is fine: it is looked up, not opened
    inside = next(iter(sorted(root.rglob("p*.jpg"))))
    page = backend.run(SearchRequest(kind="text", text=f'@"{inside}" + "a red car"', limit=3))
    assert len(page.hits) == 3
    assert not any(p.startswith(str(outside.resolve())) or p.startswith("/etc") for p in opened)


def test_ui_backend_never_shows_or_reads_a_tampered_row_pointing_out_of_the_roots(
    layout: tuple[Path, Path, Path], tmp_path: Path, opened: list[str]
) -> None:
    data, root, outside = layout
    tampered = tmp_path / "data"
    shutil.copytree(data, tampered)
    targets = [
        str(outside / "secret.jpg"),
        f"{root}/../private/secret.jpg",
        str(root / "d0" / "link.jpg"),
        str(root / "linkdir" / "secret.jpg"),
    ]
    with Collection.open(tampered) as collection:
        with collection.session() as s, s.begin():
            rows = list(s.scalars(select(Photo).order_by(Photo.id)))
            for row, target in zip(rows, targets, strict=False):
                row.path = target  # what an attacker with write access to the database could do
        collection.rebuild_index()
        ids = [r.id for r in rows[: len(targets)]]
    b = Backend.open(tampered, UiConfig())
    try:
        for photo_id in ids:
            assert b.photo(photo_id) is None
            hit = b.searcher.photo(photo_id)
            assert hit is not None
            assert b.thumbnail(hit) is None
            assert b.thumbnail(hit, preview=True) is None
            with pytest.raises(QueryError, match="not available"):  # ranks nothing by it either
                b.run(SearchRequest(kind="similar", photo_id=photo_id, limit=10))
        page = b.run(SearchRequest(kind="text", text="a red car", limit=10))
        assert page.hits and all(h.path not in targets for h in page.hits)
    finally:
        b.close()
    assert not any(p.startswith(str(outside.resolve())) for p in opened)
    thumbs = tampered / "thumbnails"
    assert not thumbs.exists() or all(
        not f.is_file() for f in thumbs.rglob("*") if f.name.split("-")[0] in map(str, ids)
    )
