"""The timeline's "Undated" photos (no date taken, a file dated at or before the epoch) come after every
dated one in the listing itself, so pages join up with the undated last, as the month headings put them,
even next to photos taken before 1970 (scanned prints)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from indexer.core.models import DualEncoder
from search import Searcher
from tests.helpers.search_collection import FakePhoto, make_collection
from ui.schema import month_key

pytestmark = pytest.mark.timeout(120)

EPOCH = datetime.fromtimestamp(0)
PHOTOS = [
    ("undated.jpg", None, EPOCH),
    ("scan1960.jpg", datetime(1960, 5, 1), datetime(2020, 1, 1)),
    ("new.jpg", None, datetime(2021, 5, 1)),
    ("scan1955.jpg", datetime(1955, 1, 1), EPOCH),
]


def test_undated_photos_come_after_photos_taken_before_1970_on_every_page(
    tmp_path: Path, tiny_clip_dir: Path, database: str | None
) -> None:
    encoder = DualEncoder(tiny_clip_dir, device="cpu")
    rng = np.random.default_rng(5)
    photos = [FakePhoto(name, rng.standard_normal(encoder.dim), taken_at=t, mtime=m) for name, t, m in PHOTOS]
    data = tmp_path / "data"
    ids = make_collection(data, tmp_path / "p", photos, model_id=encoder.model_id, db_url=database)
    by_id = {pid: name for (name, _, _), pid in zip(PHOTOS, ids, strict=True)}
    with Searcher.open(data, encoder=encoder) as s:
        listed = s.list_by_date(k=10)
        pages = [h for offset in range(4) for h in s.list_by_date(k=1, offset=offset)]
    assert [by_id[h.id] for h in listed] == ["new.jpg", "scan1960.jpg", "scan1955.jpg", "undated.jpg"]
    assert [h.id for h in pages] == [h.id for h in listed]
    assert [month_key(h) for h in listed] == ["2021-05", "1960-05", "1955-01", None]
