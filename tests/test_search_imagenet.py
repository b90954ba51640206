"""End to end on ../shared/datasets/imagenet-sample with the real default model (slow, shared data).

Indexes the 1000 ImageNet photos (one per class, named n01443537_goldfish.JPEG) with `dualens index`,
then checks that a text query finds its photo and that `dualens similar` returns related classes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ui.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "imagenet-sample"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.shared,
    pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets/imagenet-sample is absent"),
]

CATS = {"tabby", "tiger_cat", "Persian_cat", "Siamese_cat", "Egyptian_cat", "lynx", "cougar", "leopard"}
CARS = {
    "sports_car", "convertible", "racer", "car_wheel", "cab", "limousine", "beach_wagon", "grille",
    "minivan", "pickup", "jeep", "Model_T", "moving_van", "police_van", "tow_truck", "recreational_vehicle",
    "go-kart", "ambulance", "minibus", "amphibian", "half_track", "snowplow", "station_wagon",
}  # fmt: skip


def class_name(path: str) -> str:
    return Path(path).stem.split("_", 1)[1]


@pytest.fixture(scope="module")
def imagenet_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("ds-imagenet")
    assert main(["index", "--data", str(data), str(SHARED), "--no-progress"]) == 0
    return data


def run_json(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_goldfish_query_lists_the_goldfish_photo_first(capsys, imagenet_data):
    out = run_json(
        capsys, "search", "--data", str(imagenet_data), "a photo of a goldfish", "-k", "5", "--json"
    )
    assert class_name(out["hits"][0]["path"]) == "goldfish"


def test_similar_cat_returns_other_cats(capsys, imagenet_data):
    photo = str(SHARED / "n02123045_tabby.JPEG")
    out = run_json(capsys, "similar", "--data", str(imagenet_data), photo, "-k", "5", "--json")
    names = [class_name(h["path"]) for h in out["hits"]]
    assert "tabby" not in names  # the photo itself is excluded
    assert len(CATS & set(names)) >= 3, names


def test_similar_sports_car_returns_other_vehicles(capsys, imagenet_data):
    photo = str(SHARED / "n04285008_sports_car.JPEG")
    out = run_json(capsys, "similar", "--data", str(imagenet_data), photo, "-k", "5", "--json")
    names = [class_name(h["path"]) for h in out["hits"]]
    assert len(CARS & set(names)) >= 3, names


def test_composite_query_moves_towards_the_added_term(capsys, imagenet_data):
    plain = run_json(capsys, "search", "--data", str(imagenet_data), "a photo of a dog", "-k", "10", "--json")
    water = run_json(
        capsys, "search", "--data", str(imagenet_data), '"a photo of a dog" + "water"', "-k", "10", "--json"
    )
    assert [h["path"] for h in plain["hits"]] != [h["path"] for h in water["hits"]]


def test_classify_names_the_goldfish(capsys, imagenet_data):
    photo = str(SHARED / "n01443537_goldfish.JPEG")
    out = run_json(
        capsys,
        "classify",
        "--data",
        str(imagenet_data),
        photo,
        "--labels",
        "goldfish,cat,sports car",
        "--json",
    )
    assert out["labels"][0]["label"] == "goldfish"


def test_index_info_on_a_real_collection(capsys, imagenet_data):
    out = run_json(capsys, "index-info", "--data", str(imagenet_data), "--json")
    assert out["kind"] == "flat" and out["ntotal"] == 1000 and out["recall_at_10"] == 1.0
