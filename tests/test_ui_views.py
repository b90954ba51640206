"""Markup built from file names and metadata: escaped, with the scores shown."""

from __future__ import annotations

from datetime import datetime

from search import Hit
from ui.views import meta_table

EVIL = '/photos/<img src=x onerror=alert(1)> "quote" & co.jpg'


def _hit(path: str = EVIL, cosine: float = 0.25) -> Hit:
    return Hit(
        id=1,
        path=path,
        cosine=cosine,
        logit=25.0,
        probability=0.4,
        width=4032,
        height=3024,
        taken_at=datetime(2021, 6, 1, 12, 30),
        camera_make="Acme<script>",
        camera_model="Snap 1",
        file_type="jpg",
        size=3_500_000,
        mtime=datetime(2022, 1, 2, 3, 4),
    )


def test_meta_table_lists_metadata_and_scores_escaped() -> None:
    html = meta_table(_hit(), with_scores=True)
    for text in (
        "2021-06-01 12:30",
        "Acme&lt;script&gt; Snap 1",
        "4032 × 3024 px",
        "JPG · 3.3 MB",
        "0.2500",
        "25.000",
        "40.0%",
        "/photos",
    ):
        assert text in html
    assert "<script>" not in html and "<img" not in html
    assert "Cosine similarity" not in meta_table(_hit(), with_scores=False)


def test_meta_table_says_unknown_for_missing_metadata() -> None:
    bare = Hit(
        id=2,
        path="/p/a.png",
        cosine=0.0,
        logit=0.0,
        probability=0.0,
        width=None,
        height=None,
        taken_at=None,
        camera_make=None,
        camera_model=None,
        file_type="png",
        size=10,
        mtime=datetime(2020, 1, 1),
    )
    html = meta_table(bare, with_scores=False)
    assert html.count("unknown") == 2  # camera, dimensions
    assert "File date" in html and "2020-01-01" in html and "records no date taken" in html
    assert "Date taken" not in html  # a file date is never shown as the date taken
