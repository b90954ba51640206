"""`dualens eval`: data set loading, the embedding cache, and both evaluation modes end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.core.errors import NotFoundError, UsageError
from indexer.core.vectors import l2_normalise
from indexer.quality.data import (
    label_from_filename,
    labels_from_filenames,
    load_caption_dataset,
    load_label_dataset,
)
from indexer.quality.evaluate import EvalOptions, class_embeddings, evaluate_retrieval, evaluate_zero_shot
from indexer.quality.prompts import resolve_templates
from tests.helpers.fake_encoder import FAKE_PREPROCESS
from ui.cli import main


def _write_images(root: Path, names: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(root / name)


@pytest.fixture
def captioned(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    _write_images(images, ["a.png", "b.png", "c.png"])
    csv = tmp_path / "captions.csv"
    csv.write_text("image,caption\na.png,a red cat\na.png,the cat\nb.png,a blue car\nc.png,a dog at night\n")
    return images, csv


class ColourEncoder:
    """Deterministic stand-in: an image's vector is its mean colour, a text's a hash of its words
    (both L2-normalised, as the model boundary promises)."""

    model_id = "colour-encoder"
    preprocess_config = FAKE_PREPROCESS

    def __init__(self) -> None:
        self.images_embedded = 0
        self.texts_embedded = 0

    def embed_pixels(self, pixels):  # type: ignore[no-untyped-def]
        self.images_embedded += len(pixels)
        return l2_normalise(np.asarray(pixels, dtype=np.float32).mean(axis=(2, 3)) + 2.0)

    def embed_texts(self, texts):  # type: ignore[no-untyped-def]
        self.texts_embedded += len(texts)
        rows = [[len(t), t.count("a") + 1.0, t.count("e") + 1.0] for t in texts]
        return l2_normalise(np.asarray(rows, dtype=np.float32))


def test_caption_csv_groups_captions_by_image(captioned: tuple[Path, Path]):
    ds = load_caption_dataset(*captioned)
    assert [p.name for p in ds.images] == ["a.png", "b.png", "c.png"]
    assert ds.caption_image.tolist() == [0, 0, 1, 2]
    sub = ds.subset(np.array([2, 0]))
    assert [p.name for p in sub.images] == ["c.png", "a.png"]
    assert sub.captions == ("a red cat", "the cat", "a dog at night")
    assert sub.caption_image.tolist() == [1, 1, 0]


def test_caption_csv_with_missing_image_or_columns_is_a_clear_error(tmp_path: Path, captioned):
    images, _ = captioned
    bad = tmp_path / "bad.csv"
    bad.write_text("image,caption\nmissing.png,a cat\n")
    with pytest.raises(NotFoundError, match=r"missing\.png"):
        load_caption_dataset(images, bad)
    bad.write_text("file,text\na.png,a cat\n")
    with pytest.raises(UsageError, match="image,caption"):
        load_caption_dataset(images, bad)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("n01440764_tench.JPEG", "tench"),
        ("n01484850_great_white_shark.JPEG", "great white shark"),
        ("golden_retriever.jpg", "golden retriever"),
    ],
)
def test_label_from_filename(name: str, label: str):
    assert label_from_filename(name) == label


def test_labels_from_filenames_and_from_csv_agree(tmp_path: Path):
    _write_images(tmp_path, ["n00000001_cat.png", "n00000002_dog.png", "n00000003_cat.png"])
    by_name = labels_from_filenames(tmp_path)
    (tmp_path / "labels.csv").write_text(
        "image,label\nn00000001_cat.png,cat\nn00000002_dog.png,dog\nn00000003_cat.png,cat\n"
    )
    by_csv = load_label_dataset(tmp_path, tmp_path / "labels.csv")
    assert by_name.classes == by_csv.classes == ("cat", "dog")
    assert by_name.labels.tolist() == by_csv.labels.tolist() == [0, 1, 0]


def test_template_sets_files_and_literals(tmp_path: Path):
    assert resolve_templates("photo") == ("a photo of a {}.",)
    assert resolve_templates("art of {}") == ("art of {}",)
    f = tmp_path / "t.txt"
    f.write_text("# mine\na {} photo\n\nthe {}\n")
    assert resolve_templates(str(f)) == ("a {} photo", "the {}")
    with pytest.raises(NotFoundError):
        resolve_templates("no-such-set")


def test_second_evaluation_reuses_cached_image_and_text_vectors(tmp_path: Path, captioned):
    ds = load_caption_dataset(*captioned)
    options = EvalOptions(cache_dir=tmp_path / "cache")
    first_encoder, second_encoder = ColourEncoder(), ColourEncoder()
    first = evaluate_retrieval(first_encoder, ds, options)
    second = evaluate_retrieval(second_encoder, ds, options)
    assert first == second
    assert first_encoder.images_embedded == 3 and first_encoder.texts_embedded == 4
    assert second_encoder.images_embedded == 0 and second_encoder.texts_embedded == 0


def test_an_edited_photo_is_embedded_again_and_a_touched_or_copied_one_is_not(tmp_path: Path, captioned):
    import os
    import shutil

    ds = load_caption_dataset(*captioned)
    options = EvalOptions(cache_dir=tmp_path / "cache")
    evaluate_retrieval(ColourEncoder(), ds, options)
    copy = tmp_path / "copied-images"
    shutil.copytree(captioned[0], copy)  # new paths and mtimes, same photos
    os.utime(ds.images[0], ns=(1, 1))
    Image.new("RGB", (20, 24), (9, 200, 30)).save(ds.images[1])
    encoder = ColourEncoder()
    evaluate_retrieval(encoder, ds, options)
    assert encoder.images_embedded == 1  # only the edited photo
    encoder = ColourEncoder()
    evaluate_retrieval(encoder, load_caption_dataset(copy, captioned[1]), options)
    assert encoder.images_embedded == 0


def test_prompt_ensemble_is_the_normalised_mean_of_prompt_vectors():
    encoder = ColourEncoder()
    got = class_embeddings(encoder, ["cat"], ["a {}", "the {} here"])
    vecs = encoder.embed_texts(["a cat", "the cat here"])
    vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    want = vecs.mean(axis=0) / np.linalg.norm(vecs.mean(axis=0))
    np.testing.assert_allclose(got[0], want, rtol=1e-6)


def test_zero_shot_with_a_perfect_encoder_scores_100(tmp_path: Path):
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    for name, rgb in colours.items():
        Image.new("RGB", (8, 8), rgb).save(tmp_path / f"n0000000{len(name)}_{name}.png")

    class Perfect(ColourEncoder):
        def embed_texts(self, texts):  # type: ignore[no-untyped-def]
            return np.stack([np.array(colours[t.split()[-1].rstrip(".")], np.float32) + 1 for t in texts])

    m = evaluate_zero_shot(Perfect(), labels_from_filenames(tmp_path), resolve_templates("photo"))
    assert (m.top1, m.n_classes) == (100.0, 3)


def test_eval_command_reports_retrieval_as_json_and_table(tiny_model_dir, captioned, tmp_path, capsys):
    images, csv = captioned
    args = ["eval", "--data", str(tmp_path / "data"), "--images", str(images), "--captions", str(csv)]
    assert main([*args, "--model", str(tiny_model_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "retrieval" and report["n_images"] == 3 and report["n_captions"] == 4
    assert 0 <= report["text_to_image"]["recall_at_1"] <= 100
    assert main([*args, "--model", str(tiny_model_dir)]) == 0
    assert "text → image" in capsys.readouterr().out


def test_eval_command_zero_shot_from_filenames(tiny_model_dir, tmp_path, capsys):
    _write_images(tmp_path / "imgs", ["n00000001_cat.png", "n00000002_dog.png"])
    args = ["eval", "--data", str(tmp_path), "--images", str(tmp_path / "imgs"), "--labels-from-filenames"]
    assert main([*args, "--model", str(tiny_model_dir), "--templates", "clip7", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "zero-shot" and report["n_classes"] == 2 and len(report["templates"]) == 7


def test_eval_command_missing_csv_is_a_one_line_error(tiny_model_dir, tmp_path, capsys):
    args = ["eval", "--images", str(tmp_path), "--captions", str(tmp_path / "nope.csv")]
    assert main([*args, "--model", str(tiny_model_dir)]) == 1
    assert "CSV file not found" in capsys.readouterr().err


def test_two_synsets_sharing_a_name_stay_two_classes(tmp_path: Path):
    _write_images(tmp_path, ["n02012849_crane.JPEG", "n03126707_crane.JPEG", "n01440764_tench.JPEG"])
    ds = labels_from_filenames(tmp_path)
    assert ds.classes == ("construction crane", "crane bird", "tench")
    assert ds.labels.tolist() == [2, 1, 0]  # images sorted by name: tench, crane bird, construction crane


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.mark.shared
@pytest.mark.skipif(not (SHARED / "flickr8k-1k").is_dir(), reason="../shared/datasets/flickr8k-1k absent")
def test_shared_flickr_captions_load_as_1000_images_with_5_captions_each():
    ds = load_caption_dataset(SHARED / "flickr8k-1k" / "images", SHARED / "flickr8k-1k" / "captions.csv")
    assert (len(ds.images), len(ds.captions)) == (1000, 5000)
    assert np.bincount(ds.caption_image).tolist() == [5] * 1000


@pytest.mark.shared
@pytest.mark.skipif(
    not (SHARED / "imagenet-sample").is_dir(), reason="../shared/datasets/imagenet-sample absent"
)
def test_shared_imagenet_sample_has_one_image_per_class():
    ds = labels_from_filenames(SHARED / "imagenet-sample")
    assert len(ds.images) == len(ds.classes) == 1000
