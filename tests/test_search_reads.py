"""The storage boundary of search (indexer/core/storage/search_reads.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo, PhotoStatus
from indexer.core.storage.search_reads import (
    PhotoFilter,
    allowed_ids,
    date_range,
    folder_rows,
    hit_rows,
    place_counts,
    shared_content_hashes,
    vector_chunks,
)
from tests.helpers.search_collection import FakePhoto, make_collection

DIM = 8


@pytest.fixture
def stored(tmp_path: Path, database: str | None) -> tuple[Path, Path, dict[str, int]]:
    """(data, root, ids by path): Cats/ and cats/ folders, two exact copies, places, one failed row."""
    rng = np.random.default_rng(5)
    names = ["Cats/a.jpg", "cats/b.png", "cats/c.jpg", "dogs/d.jpg", "dogs/e.jpg"]
    photos = [
        FakePhoto(
            name,
            rng.standard_normal(DIM),
            file_type=Path(name).suffix[1:],
            taken_at=datetime(2020, 1 + i, 1) if i % 2 else None,
            mtime=datetime(2021, 1 + i, 15),
        )
        for i, name in enumerate(names)
    ]
    root = tmp_path / "photos"
    ids = make_collection(tmp_path / "data", root, photos, model_id="m", save_index=False, db_url=database)
    by_name = dict(zip(names, ids, strict=True))
    with Collection.open(tmp_path / "data") as c, c.session() as s, s.begin():
        for name in ("cats/b.png", "dogs/d.jpg", "dogs/e.jpg"):
            s.execute(update(Photo).where(Photo.id == by_name[name]).values(content_hash="same"))
        s.execute(update(Photo).where(Photo.id == by_name["dogs/e.jpg"]).values(status=PhotoStatus.ERROR))
        s.execute(update(Photo).where(Photo.id == by_name["Cats/a.jpg"]).values(place_country="France"))
        s.execute(
            update(Photo)
            .where(Photo.id.in_([by_name["cats/c.jpg"], by_name["dogs/d.jpg"]]))
            .values(place_country="Japan", place_city="Kyoto")
        )
    return tmp_path / "data", root, by_name


def test_allowed_ids_follow_the_spec_case_sensitively_and_skip_unindexed_rows(stored) -> None:
    data, root, ids = stored
    with Collection.open(data) as c:

        def names(spec: PhotoFilter) -> set[str]:
            found = set(allowed_ids(c, spec).tolist())
            return {name for name, i in ids.items() if i in found}

        assert names(PhotoFilter()) == set(ids) - {"dogs/e.jpg"}
        assert names(PhotoFilter(path_prefixes=(f"{root}/cats/",))) == {"cats/b.png", "cats/c.jpg"}
        assert names(PhotoFilter(file_types=("png",))) == {"cats/b.png"}
        assert names(PhotoFilter(place="kyoto")) == {"cats/c.jpg", "dogs/d.jpg"}
        assert names(PhotoFilter(date_from=date(2020, 2, 1), date_to=date(2020, 2, 1))) == {"cats/b.png"}


def test_hit_rows_are_those_of_indexed_photos_and_ignore_impossible_ids(stored) -> None:
    data, _, ids = stored
    with Collection.open(data) as c:
        rows = hit_rows(c, [ids["Cats/a.jpg"], ids["dogs/e.jpg"], 2**70, -(2**70)])
    assert set(rows) == {ids["Cats/a.jpg"]} and rows[ids["Cats/a.jpg"]].path.endswith("Cats/a.jpg")


def test_facet_reads_cover_indexed_photos_only(stored) -> None:
    data, root, _ = stored
    with Collection.open(data) as c:
        assert sorted(Path(p).relative_to(root).as_posix() for p, _, _ in folder_rows(c)) == [
            "Cats/a.jpg",
            "cats/b.png",
            "cats/c.jpg",
            "dogs/d.jpg",
        ]
        assert place_counts(c) == [("Japan", 2), ("France", 1), ("Kyoto", 2)]
        span = date_range(c)
    assert (span.first_taken, span.last_taken) == (datetime(2020, 2, 1), datetime(2020, 4, 1))
    assert span.first_mtime_ns is not None and span.last_mtime_ns is not None
    assert span.first_mtime_ns < span.last_mtime_ns


def test_shared_content_hashes_and_vector_chunks_read_indexed_photos(stored) -> None:
    data, _, ids = stored
    with Collection.open(data) as c:
        assert shared_content_hashes(c) == [("same", ids["cats/b.png"]), ("same", ids["dogs/d.jpg"])]
        with vector_chunks(c, DIM) as chunks:
            parts = list(chunks)
    read = np.concatenate([p[0] for p in parts])
    assert read.tolist() == sorted(i for name, i in ids.items() if name != "dogs/e.jpg")
    assert all(p[1].shape == (len(p[0]), DIM) for p in parts)
