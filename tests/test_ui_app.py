"""The Streamlit page driven by ``streamlit.testing.v1.AppTest`` against a real small collection
(generated photos, the real indexer, a tiny random model)."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.helpers import grid_apptest
from tests.helpers.ui_fixtures import DATED, build_collection, make_photos

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")
PAGE = 6
TIMEOUT = 60


@pytest.fixture(scope="module")
def collection(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, module_db_url: str | None
) -> tuple[Path, Path]:
    """The UI's collection: in a SQLite file, and (a second run of the tests) on PostgreSQL."""
    base = tmp_path_factory.mktemp("ui-app")
    photos, data = base / "photos", base / "data"
    make_photos(photos, n=20)
    build_collection(data, photos, tiny_model_dir, module_db_url)
    return data, photos


@pytest.fixture(autouse=True)
def _fresh_backends() -> Iterator[None]:
    from ui.page import get_backend

    yield
    get_backend.clear()


def _app(data: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("DUALENS_DATA", str(data))
    monkeypatch.setenv("DUALENS_UI_PAGE_SIZE", str(PAGE))
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def _search(at: AppTest, text: str) -> AppTest:
    at.text_input(key="q").set_value(text)
    return at.run()


def _ids(at: AppTest) -> list[int]:
    return grid_apptest.ids(at)


def _names(at: AppTest) -> list[str]:
    return grid_apptest.names(at)


def _bands(at: AppTest) -> list[str]:
    return [str(item["band"]) for item in grid_apptest.items(at)]


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown]
    for kind in ("info", "warning", "error", "caption"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def _clean(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert "Traceback" not in _texts(at)


def test_missing_collection_says_how_to_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(tmp_path / "nothing-here", monkeypatch).run()
    _clean(at)
    assert "make index" in _texts(at)
    assert not at.text_input


def test_damaged_database_is_reported_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    junk = b"this is not an sqlite database" * 100
    (data / "dualens.sqlite").write_bytes(junk)
    at = _app(data, monkeypatch).run()
    _clean(at)
    assert "cannot be opened" in _texts(at) and "dualens check" in _texts(at)
    assert (data / "dualens.sqlite").read_bytes() == junk


def test_collection_without_photos_shows_a_friendly_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    (tmp_path / "empty").mkdir()
    build_collection(tmp_path / "data", tmp_path / "empty", tiny_model_dir)
    at = _app(tmp_path / "data", monkeypatch).run()
    _clean(at)
    assert "no indexed photos" in _texts(at) or "make index" in _texts(at)


def test_start_page_shows_status_and_examples(collection: tuple[Path, Path], monkeypatch) -> None:
    data, _ = collection
    at = _app(data, monkeypatch).run()
    _clean(at)
    photos_metric = next(m for m in at.sidebar.metric if m.label == "Photos")
    assert photos_metric.value == "20"
    assert next(m for m in at.sidebar.metric if m.label == "Failed").value == "0"
    assert "Last indexed" in _texts(at) and "never" not in _texts(at)
    assert any(b.key == "example-0" for b in at.button)
    at.button(key="example-0").click().run()
    _clean(at)
    assert len(_ids(at)) == PAGE


def test_text_query_shows_thumbnails_with_scores_and_a_count(collection, monkeypatch) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), "a red car")
    _clean(at)
    assert len(_ids(at)) == PAGE
    assert all(item["src"] and item["w"] > 0 and item["h"] > 0 for item in grid_apptest.items(at))
    assert f"{PAGE} of 20 photos" in _texts(at)  # every photo is ranked: the count says of how many
    bands = _bands(at)
    order = {"strong": 0, "good": 1, "weak": 2}
    assert len(bands) == PAGE and [order[b] for b in bands] == sorted(order[b] for b in bands)
    thumbs = list((data / "thumbnails").rglob("*.jpg"))
    assert len(thumbs) >= PAGE
    assert at.query_params["q"] == "a red car"


def test_show_more_adds_a_page_of_results(collection, monkeypatch) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), "a red car")
    first = _ids(at)
    at.button(key="more").click().run()
    _clean(at)
    more = _ids(at)
    assert len(more) == 2 * PAGE and more[:PAGE] == first
    for _ in range(3):
        if not any(b.key == "more" for b in at.button):
            break
        at.button(key="more").click().run()
    assert len(_ids(at)) == 20
    assert not any(b.key == "more" for b in at.button)  # everything shown: no more button


def test_similar_replaces_the_results_and_leaves_the_photo_out(collection, monkeypatch) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), "a red car")
    source = _ids(at)[0]
    source_name = _names(at)[0]
    grid_apptest.similar(at, source)
    _clean(at)
    assert "Photos similar to" in _texts(at) and source_name in _texts(at)
    assert source not in _ids(at)
    assert len(_ids(at)) == PAGE
    assert at.query_params["similar"] == str(source)
    assert at.text_input(key="q").value == ""


def test_folder_filter_keeps_only_that_folder(collection, monkeypatch) -> None:
    data, photos = collection
    at = _search(_app(data, monkeypatch).run(), "a red car")
    beach = str((photos / "beach").resolve())
    assert "photos/beach  (10)" in at.selectbox(key="f_folder").options
    at.selectbox(key="f_folder").set_value(beach).run()
    _clean(at)
    names = _names(at)
    assert names and all(int(n[6:9]) % 2 == 0 for n in names)  # even photos are in beach/


def test_place_filter_keeps_photos_taken_there(collection, monkeypatch) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), "a red car")
    assert at.selectbox(key="f_place").options[1:] == ["France  (4)", "Paris  (4)"]
    at.selectbox(key="f_place").set_value("Paris").run()
    _clean(at)
    names = _names(at)
    assert names and all(int(n[6:9]) % 5 == 0 for n in names)  # every fifth photo was taken in Paris


def test_date_filter_keeps_photos_taken_that_day(collection, monkeypatch) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), "a red car")
    at.date_input(key="f_dates").set_value((DATED.date(), DATED.date())).run()
    _clean(at)
    names = _names(at)
    assert names and all(int(n[6:9]) % 3 == 0 for n in names)  # every third photo has that EXIF date


def test_strong_matches_only_hides_the_rest_and_says_when_nothing_is_left(collection, monkeypatch) -> None:
    from search import Searcher
    from search.relevance import Relevance
    from ui.page import get_backend

    data, _ = collection
    hits = get_backend_hits(data, "a red car")
    cut = (hits[1].cosine + hits[2].cosine) / 2  # two hits are strong
    monkeypatch.setattr(Searcher, "relevance", lambda self: Relevance(floor=-1.0, strong=cut))
    get_backend.clear()
    at = _search(_app(data, monkeypatch).run(), "a red car")
    assert len(_ids(at)) == PAGE
    at.radio(key="f_min_match").set_value("strong").run()
    _clean(at)
    assert _ids(at) == [hits[0].id, hits[1].id]
    monkeypatch.setattr(Searcher, "relevance", lambda self: Relevance(floor=-1.0, strong=5.0))
    get_backend.clear()
    at = _search(_app(data, monkeypatch).run(), "a red car")
    at.radio(key="f_min_match").set_value("strong").run()
    _clean(at)
    assert _ids(at) == [] and "No photos match" in _texts(at) and "strong matches or better" in _texts(at)
    at.button(key="reset-filters").click().run()  # the empty page offers the way back
    _clean(at)
    assert len(_ids(at)) == PAGE and at.radio(key="f_min_match").value == "all"


def test_details_dialog_shows_metadata_and_scores(collection, monkeypatch) -> None:
    data, photos = collection
    at = _search(_app(data, monkeypatch).run(), "a red car")
    hit = _ids(at)[0]
    grid_apptest.open_photo(at, hit)
    _clean(at)
    text = _texts(at)
    for label in ("Date taken", "Camera", "Dimensions", "Cosine similarity", "Model logit", "Probability"):
        assert label in text
    assert str(photos.resolve()) in text
    assert any(b.label == "Find similar photos" for b in at.button)


def test_upload_finds_the_same_photo_first(collection, monkeypatch) -> None:
    data, photos = collection
    original = photos / "city" / "photo_007.jpg"
    with Image.open(original) as image:  # a near-duplicate: re-encoded at another quality
        buf = io.BytesIO()
        image.convert("RGB").save(buf, "JPEG", quality=70)
    at = _app(data, monkeypatch).run()
    at.file_uploader(key="upload").set_value(("mine.jpg", buf.getvalue(), "image/jpeg")).run()
    _clean(at)
    assert "Photos like" in _texts(at) and "mine.jpg" in _texts(at)
    assert _names(at)[0] == "photo_007.jpg"
    _search(at, "a red car")
    assert "Photos like" not in _texts(at)
    at.button(key="reupload").click().run()
    _clean(at)
    assert "Photos like" in _texts(at) and _names(at)[0] == "photo_007.jpg"


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"definitely not a jpeg", "not an image"), (b"", "empty"), (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "")],
)
def test_broken_upload_gives_a_friendly_message(
    collection, monkeypatch, payload: bytes, message: str
) -> None:
    data, _ = collection
    at = _app(data, monkeypatch).run()
    start = _ids(at)  # the start page's timeline (ui/timeline.py)
    at.file_uploader(key="upload").set_value(("broken.jpg", payload, "image/jpeg")).run()
    _clean(at)
    warnings = " ".join(str(w.value) for w in at.warning)
    assert warnings and message in warnings
    assert _ids(at) == start and "Photos like" not in _texts(at)  # no results of the broken file


def test_upload_over_the_pixel_limit_is_refused(collection, monkeypatch) -> None:
    data, _ = collection
    monkeypatch.setenv("DUALENS_UI_MAX_UPLOAD_PIXELS", "1000")
    at = _app(data, monkeypatch).run()
    buf = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buf, "PNG")
    at.file_uploader(key="upload").set_value(("big.png", buf.getvalue(), "image/png")).run()
    _clean(at)
    assert "megapixels" in " ".join(str(w.value) for w in at.warning)


def test_query_params_take_a_photo_id_but_never_a_path(collection, monkeypatch) -> None:
    data, _ = collection
    at = _app(data, monkeypatch)
    at.query_params["similar"] = "3"
    at.run()
    _clean(at)
    assert "Photos similar to" in _texts(at) and 3 not in _ids(at)

    at = _app(data, monkeypatch)
    at.query_params["similar"] = "999999"
    at.run()
    _clean(at)
    assert _ids(at) == [] and "999999" in " ".join(str(w.value) for w in at.warning)

    start = _ids(_app(data, monkeypatch).run())  # the start page: its timeline (ui/timeline.py)
    for bad in ("../../etc/passwd", "/etc/passwd", "3 OR 1=1", "-1"):
        at = _app(data, monkeypatch)
        at.query_params["similar"] = bad
        at.run()
        _clean(at)
        assert _ids(at) == start and "Try a search" in _texts(at) and "Photos similar to" not in _texts(at)


def test_query_naming_a_file_outside_the_collection_is_refused(collection, monkeypatch, tmp_path) -> None:
    data, photos = collection
    outside = tmp_path / "secret.jpg"
    Image.new("RGB", (20, 20)).save(outside)
    at = _search(_app(data, monkeypatch).run(), f'{outside} + "at night"')
    _clean(at)
    assert "not an indexed photo" in _texts(at)
    assert _ids(at) == []
    inside = photos / "beach" / "photo_000.jpg"
    at = _search(at, f'{inside.resolve()} + "at night"')
    _clean(at)
    assert len(_ids(at)) == PAGE


def test_malformed_query_gives_a_message_not_a_traceback(collection, monkeypatch) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), '#1 + "beach" -')  # a composite with a photo in it
    _clean(at)
    assert at.warning and _ids(at) == []


def test_quotes_as_in_a_web_search_are_searched_as_plain_text(collection, monkeypatch) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), '"red car" on a road')
    _clean(at)
    assert len(_ids(at)) == PAGE
    assert not any("quote" in str(w.value) or "expected" in str(w.value) for w in at.warning)


def test_new_index_is_picked_up_without_restarting(tmp_path, monkeypatch, tiny_model_dir) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    make_photos(photos, n=6)
    build_collection(data, photos, tiny_model_dir)
    at = _app(data, monkeypatch).run()
    assert next(m for m in at.sidebar.metric if m.label == "Photos").value == "6"
    shutil.rmtree(photos / "city")
    make_photos(tmp_path / "more", n=10, seed=1)
    shutil.copytree(tmp_path / "more" / "city", photos / "city2")
    build_collection(data, photos, tiny_model_dir, None, "--prune")  # a folder gone: --prune confirms
    at.run()
    _clean(at)
    assert next(m for m in at.sidebar.metric if m.label == "Photos").value == str(3 + 5)
    at = _search(at, "a red car")
    assert len(_ids(at)) == PAGE


def test_photo_reached_through_a_symlink_out_of_the_root_is_never_shown(
    tmp_path, monkeypatch, tiny_model_dir
):
    photos, data, outside = tmp_path / "photos", tmp_path / "data", tmp_path / "outside"
    make_photos(photos, n=4)
    make_photos(outside, n=2, seed=3)
    # the indexer does not follow a link out of the root: the link replaces a photo once indexed
    shutil.copyfile(outside / "beach" / "photo_000.jpg", photos / "escape.jpg")
    build_collection(data, photos, tiny_model_dir)
    (photos / "escape.jpg").unlink()
    (photos / "escape.jpg").symlink_to(outside / "beach" / "photo_000.jpg")
    from indexer.core.storage.collection import Collection

    with Collection.open(data) as col:
        escaped = col.photo_by_path(str(photos / "escape.jpg"))
    if escaped is None:
        pytest.skip("the indexer did not follow the symlink; nothing outside the root to hide")
    at = _search(_app(data, monkeypatch).run(), "a red car")
    _clean(at)
    assert "escape.jpg" not in _names(at) and escaped.id not in _ids(at)
    at = _app(data, monkeypatch)
    at.query_params["similar"] = str(escaped.id)
    at.run()
    _clean(at)
    assert escaped.id not in _ids(at) and "escape.jpg" not in _texts(at)
    assert not any(p.name.startswith(f"{escaped.id}-") for p in (data / "thumbnails").rglob("*.jpg"))


@pytest.mark.parametrize(
    ("floor", "weak_expected"),
    [(-2.0, "none"), (2.0, "all"), (None, "some")],
)
def test_weak_matches_sit_below_a_divider_and_all_weak_says_no_good_matches(
    collection, monkeypatch, floor: float | None, weak_expected: str
) -> None:
    from search import Searcher
    from search.relevance import Relevance

    data, _ = collection
    cut = floor
    if cut is None:
        scores = sorted(
            (h.cosine for h in get_backend_hits(data, "a red car")), reverse=True
        )  # a floor between the 2nd and 3rd hit
        cut = (scores[1] + scores[2]) / 2
    monkeypatch.setattr(Searcher, "relevance", lambda self: Relevance(floor=cut, strong=5.0))
    from ui.page import get_backend

    get_backend.clear()
    at = _search(_app(data, monkeypatch).run(), "a red car")
    _clean(at)
    bands = _bands(at)
    divider = "Weaker matches" in _texts(at)
    nothing_good = "No good matches for" in _texts(at)
    assert len(bands) == PAGE
    if weak_expected == "none":
        assert set(bands) == {"good"} and not divider and not nothing_good
    elif weak_expected == "all":
        assert set(bands) == {"weak"} and nothing_good and not divider
    else:
        assert bands[:2] == ["good", "good"] and set(bands[2:]) == {"weak"} and divider and not nothing_good


def get_backend_hits(data: Path, text: str):  # type: ignore[no-untyped-def]
    from search import Searcher

    with Searcher.open(data) as searcher:
        return searcher.search(text, k=PAGE)


def test_the_url_restores_query_filters_and_the_viewed_photo(collection, monkeypatch) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), "a red car")
    photo = _ids(at)[0]
    at = _app(data, monkeypatch)
    at.query_params.update({"q": "a red car", "place": "Paris", "photo": str(photo), "folder": "/nowhere"})
    at.run()
    _clean(at)
    assert at.text_input(key="q").value == "a red car"
    assert at.selectbox(key="f_place").value == "Paris"  # a folder the collection lacks is ignored
    assert at.selectbox(key="f_folder").value == ""
    assert len(_ids(at)) == 4  # every fifth of the 20 photos was taken in Paris
    assert "4 of 4 photos" in _texts(at)
    assert any(b.key == "viewer-next" for b in at.button)  # the viewer is open on that photo
    assert at.query_params["place"] in ("Paris", ["Paris"])


def test_a_filter_chip_removes_its_filter(collection, monkeypatch) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), "a red car")
    assert not [b for b in at.button if b.key and b.key.startswith("chip-")]
    at.selectbox(key="f_place").set_value("Paris").run()
    _clean(at)
    assert len(_ids(at)) == 4
    (chip,) = [b for b in at.button if b.key and b.key.startswith("chip-")]
    assert chip.label == "Place: Paris"
    chip.click().run()
    _clean(at)
    assert at.selectbox(key="f_place").value == "" and len(_ids(at)) == PAGE


def test_similar_leads_back_to_the_text_results(collection, monkeypatch) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), "a red car")
    first = _ids(at)
    grid_apptest.similar(at, first[0])
    assert "Photos similar to" in _texts(at) and at.text_input(key="q").value == ""
    at.button(key="back").click().run()
    _clean(at)
    assert at.text_input(key="q").value == "a red car" and _ids(at) == first


def test_the_viewer_steps_through_the_results(collection, monkeypatch) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), "a red car")
    ids = _ids(at)
    grid_apptest.open_photo(at, ids[0])
    assert f"1 of {PAGE}" in _texts(at)
    assert at.button(key="viewer-prev").disabled
    at.button(key="viewer-next").click().run()
    _clean(at)
    assert f"2 of {PAGE}" in _texts(at)
    assert at.query_params["photo"] in (str(ids[1]), [str(ids[1])])


def test_cards_show_the_date_and_file_names_on_request(collection, monkeypatch) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), "a red car")
    grids = grid_apptest.grids(at)
    assert grids and not any(g["showNames"] for g in grids)  # names read out (alt text), not shown
    dates = [item["date"] for item in grid_apptest.items(at)]
    assert len(dates) == PAGE and all(re.fullmatch(r"\d{4}-\d\d-\d\d", d) for d in dates)
    assert all(item["name"] in item["alt"] for item in grid_apptest.items(at))
    at.toggle(key="show_names").set_value(True).run()
    _clean(at)
    assert all(g["showNames"] for g in grid_apptest.grids(at)) and len(_names(at)) == PAGE
