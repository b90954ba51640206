"""The viewer's "Probability" row says how often a band is right, not the model's softmax share."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from search import Hit, band_chance
from ui.views import meta_table


def _hit(relevance: str) -> Hit:
    return Hit(
        id=1,
        path="/p/goldfish.jpg",
        cosine=0.52,
        logit=52.0,
        probability=0.135,  # the softmax share that read "Probability 13.5 %" beside "Strong match"
        width=500,
        height=375,
        taken_at=datetime(2021, 6, 1, 12, 30),
        camera_make=None,
        camera_model=None,
        file_type="jpg",
        size=120_000,
        mtime=datetime(2022, 1, 2, 3, 4),
        relevance=relevance,
    )


def test_a_strong_match_s_probability_is_how_often_strong_matches_were_right() -> None:
    html = meta_table(_hit("strong"), with_scores=True)
    assert "Strong match" in html and "9 in 10 strong matches were the right photo" in html
    assert "13.5%" not in html


def test_each_band_has_its_own_chance_and_no_band_none() -> None:
    chances = [band_chance(b) for b in ("strong", "good", "weak")]
    assert all(chances) and len(set(chances)) == 3
    assert band_chance("") == "" and band_chance("bogus") == ""


def test_a_hit_without_a_band_shows_the_share_and_says_it_is_no_chance_of_matching() -> None:
    html = meta_table(replace(_hit(""), probability=0.4), with_scores=True)
    assert "40.0%" in html and "not a chance of matching" in html
