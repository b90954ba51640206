"""The relevance calibration is stored with the index generation and measured once, not per process."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from indexer.core.models import DualEncoder
from indexer.core.storage.calibration import (
    CalibrationKey,
    calibration_file,
    read_calibration,
    write_calibration,
)
from indexer.core.storage.collection import InfoKey, set_info
from search import Searcher
from search.relevance import BACKGROUND_QUERIES, nonsense_queries
from tests.helpers.search_collection import FakePhoto, make_collection

KEY = CalibrationKey("c0ffee", 3, "some/model", "abc123", "rule-1")
VALUES = {"floor": 0.25, "strong": 0.31}


def test_a_stored_calibration_reads_back_for_its_key_only(tmp_path: Path) -> None:
    assert read_calibration(tmp_path, KEY) is None
    assert write_calibration(tmp_path, KEY, VALUES) is True
    assert read_calibration(tmp_path, KEY) == VALUES
    for changed in (
        replace(KEY, generation=4),
        replace(KEY, collection_id="other"),
        replace(KEY, model_id="other/model"),
        replace(KEY, model_fingerprint="def456"),
        replace(KEY, rule="rule-2"),
    ):
        assert read_calibration(tmp_path, changed) is None


@pytest.mark.parametrize("body", ["", "{not json", "[]", '{"key": 1}', '{"values": {"floor": "x"}}'])
def test_a_damaged_calibration_file_reads_as_none(tmp_path: Path, body: str) -> None:
    calibration_file(tmp_path).write_text(body)
    assert read_calibration(tmp_path, KEY) is None


def test_a_calibration_that_cannot_be_written_reports_it_and_leaves_no_file(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    assert write_calibration(not_a_directory, KEY, VALUES) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


class _Counting(DualEncoder):
    """The tiny model, counting the background (nonsense) batches its text tower embeds."""

    background = nonsense_queries(BACKGROUND_QUERIES)
    calibrations = 0

    def embed_texts(self, texts, *args, **kwargs):
        if list(texts) == self.background:
            type(self).calibrations += 1
        return super().embed_texts(texts, *args, **kwargs)


def test_a_new_process_reads_the_calibration_until_a_new_index_generation(
    tmp_path: Path, tiny_clip_dir: Path, database: str | None
) -> None:
    encoder = _Counting(tiny_clip_dir)
    _Counting.calibrations = 0
    rng = np.random.default_rng(0)
    photos = [FakePhoto(f"{i}.jpg", rng.standard_normal(encoder.dim)) for i in range(30)]
    data = tmp_path / "data"
    make_collection(data, tmp_path / "p", photos, model_id=encoder.model_id, db_url=database)

    def bands() -> list[str]:
        # a fresh Searcher and encoder, as in a new `dualens search` process
        with Searcher.open(data, encoder=_Counting(tiny_clip_dir), db_url=database) as s:
            return [h.relevance for h in s.search("a dog", k=30)]

    first = bands()
    assert _Counting.calibrations == 1 and calibration_file(data).is_file()
    assert bands() == first and _Counting.calibrations == 1  # read, not measured again
    with Searcher.open(data, encoder=encoder, db_url=database) as s:
        with s.collection.session() as session, session.begin():
            set_info(session, InfoKey.GENERATION, 2)
        s.collection.rebuild_index()  # the indexer saves a new generation
    bands()
    assert _Counting.calibrations == 2  # the new generation is measured once
    bands()
    assert _Counting.calibrations == 2
