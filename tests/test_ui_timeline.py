"""The timeline (ui/timeline.py): month grouping, and the newest-first listing it pages through
(Searcher.list_by_date on the storage read ``date_keys``), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from indexer.core.models import DualEncoder
from indexer.core.storage.collection import Collection
from indexer.core.storage.search_reads import PhotoFilter, date_keys
from search import Filters, Hit, Searcher
from tests.helpers.search_collection import FakePhoto, make_collection
from ui.timeline import UNDATED, month_groups, month_of

# (name, taken_at, mtime): the timeline's date is taken_at, else mtime
PHOTOS = [
    ("a/old.jpg", datetime(2018, 3, 3), datetime(2024, 1, 1)),
    ("a/july1.jpg", datetime(2019, 7, 10), datetime(2020, 1, 1)),
    ("b/nodate.jpg", None, datetime(2021, 5, 1)),
    ("b/july2.jpg", datetime(2019, 7, 28), datetime(2020, 1, 1)),
    ("a/june.jpg", datetime(2019, 6, 1), datetime(2024, 1, 1)),
    ("b/same1.jpg", datetime(2019, 6, 1), datetime(2020, 1, 1)),  # the same date as june.jpg
]
NEWEST_FIRST = ["b/nodate.jpg", "b/july2.jpg", "a/july1.jpg", "b/same1.jpg", "a/june.jpg", "a/old.jpg"]


def _hit(pid: int, taken: datetime | None, mtime: datetime) -> Hit:
    return Hit(
        id=pid, path=f"/p/{pid}.jpg", cosine=0.0, logit=0.0, probability=0.0, width=1, height=1,
        taken_at=taken, camera_make=None, camera_model=None, file_type="jpg", size=1, mtime=mtime,
    )  # fmt: skip


def test_months_are_headed_in_order_and_undated_photos_come_last() -> None:
    epoch = datetime.fromtimestamp(0)
    hits = [
        _hit(1, datetime(2019, 7, 28), epoch),
        _hit(2, None, datetime(2019, 7, 3)),  # no date taken: the file's date
        _hit(3, None, epoch),  # neither: undated
        _hit(4, datetime(2019, 6, 30, 23, 59), epoch),
        _hit(5, datetime(2018, 12, 1), epoch),
    ]
    groups = month_groups(hits)
    assert [(month, [h.id for h in members]) for month, members in groups] == [
        ("July 2019", [1, 2]),
        ("June 2019", [4]),
        ("December 2018", [5]),
        (UNDATED, [3]),
    ]
    assert month_of(hits[2]) == UNDATED and month_groups([]) == []


@pytest.fixture
def world(
    tmp_path: Path, tiny_clip_dir: Path, database: str | None
) -> tuple[Path, DualEncoder, dict[str, int]]:
    encoder = DualEncoder(tiny_clip_dir, device="cpu")
    rng = np.random.default_rng(3)
    photos = [FakePhoto(name, rng.standard_normal(encoder.dim), taken_at=t, mtime=m) for name, t, m in PHOTOS]
    ids = make_collection(
        tmp_path / "data", tmp_path / "p", photos, model_id=encoder.model_id, db_url=database
    )
    return tmp_path / "data", encoder, {name: pid for (name, _, _), pid in zip(PHOTOS, ids, strict=True)}


def test_the_listing_is_newest_first_by_date_taken_else_file_date_and_pages(world) -> None:
    data, encoder, ids = world
    with Searcher.open(data, encoder=encoder) as s:
        listed = s.list_by_date(k=10)
        pages = s.list_by_date(k=4) + s.list_by_date(k=4, offset=4)
    by_id = {pid: name for name, pid in ids.items()}
    assert [by_id[h.id] for h in listed] == NEWEST_FIRST
    assert [h.id for h in pages] == [h.id for h in listed]  # pages join up without gaps or repeats
    assert [h.rank for h in listed] == list(range(1, 7))
    # equal dates: the newer id first, the same on every read
    assert listed.index(next(h for h in listed if h.id == ids["b/same1.jpg"])) == 3


def test_the_listing_applies_the_folder_and_date_filters(world) -> None:
    data, encoder, ids = world
    with Searcher.open(data, encoder=encoder) as s:
        folder = s.list_by_date(Filters(folder="b"), k=10)
        dated = s.list_by_date(Filters(date_from=datetime(2019, 7, 1).date()), k=10)
    assert [h.id for h in folder] == [ids[n] for n in NEWEST_FIRST if n.startswith("b/")]
    assert [h.id for h in dated] == [ids[n] for n in ("b/nodate.jpg", "b/july2.jpg", "a/july1.jpg")]


def test_date_keys_read_the_dates_of_the_photos_a_spec_allows(world) -> None:
    data, _, ids = world
    with Collection.open(data) as collection:
        keys = {pid: (taken, ns) for pid, _, taken, ns in date_keys(collection, PhotoFilter())}
        only_b = date_keys(
            collection, PhotoFilter(path_prefixes=(str((data.parent / "p" / "b").resolve()) + "/",))
        )
    assert set(keys) == set(ids.values())
    assert keys[ids["b/nodate.jpg"]][0] is None
    assert datetime.fromtimestamp(keys[ids["b/nodate.jpg"]][1] / 1e9) == datetime(2021, 5, 1)
    assert {pid for pid, *_ in only_b} == {ids[n] for n in ids if n.startswith("b/")}
