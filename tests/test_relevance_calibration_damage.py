"""A stored relevance calibration whose numbers no measurement can give (a floor outside the cosine
range, a strong cut-off below the floor: a damaged relevance.json) is measured again, not used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer.core.models import DualEncoder
from indexer.core.storage.calibration import calibration_file
from search import Searcher
from tests.helpers.search_collection import FakePhoto, make_collection

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("values", [{"floor": 9.19, "strong": 9.5}, {"floor": 0.3, "strong": 0.1}])
def test_a_calibration_no_measurement_could_give_is_measured_again(
    tmp_path: Path, tiny_clip_dir: Path, values: dict[str, float]
) -> None:
    encoder = DualEncoder(tiny_clip_dir, device="cpu")
    rng = np.random.default_rng(0)
    photos = [FakePhoto(f"{i}.jpg", rng.standard_normal(encoder.dim)) for i in range(30)]
    data = tmp_path / "data"
    make_collection(data, tmp_path / "p", photos, model_id=encoder.model_id)
    with Searcher.open(data, encoder=encoder) as s:
        measured = s.relevance().values()
    stored = json.loads(calibration_file(data).read_text())
    calibration_file(data).write_text(json.dumps({**stored, "values": values}))
    with Searcher.open(data, encoder=encoder) as s:
        assert s.relevance().values() == pytest.approx(measured)
    assert json.loads(calibration_file(data).read_text())["values"] == pytest.approx(measured)
