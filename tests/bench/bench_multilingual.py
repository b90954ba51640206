"""dualens-default-v5 (multilingual) against v4.2, same run: ``make bench-multilingual``.

* text -> image recall@1/5/10 on flickr8k-1k: the German ``captions.de.csv`` (937 photos, one
  Multi30k caption each) and the English ``captions.csv`` (1000 photos, 5000 captions);
* zero-shot top-1 on imagenet-sample ("a photo of a {class}.");
* query encoding in a warm process, p50 (one thread, the backend ``auto`` picks), English and
  German/French/Spanish queries apart (v5 routes them to different text towers);
* ``dualens search`` in a new process on a small collection indexed with each model, p50, an
  English and a German query apart;
* v5's routing: the share of the German captions sent to USE, of the English ones to MiniLM.

Image vectors: v4.2's come through the evaluation cache (``make eval`` fills it); v5's image
side is v4.2's vector times the head's ``v42_visual_map`` (exactly what the model computes, since
both are normalised after a linear map: tests/test_model_v5.py checks it on real photos), so the
photos are not embedded twice. Text vectors come from each model itself.
Not a test: it prints the figures, the v4.2 baseline, the ratio, and MET/NOT MET per target.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DATASETS = (
    Path("/work/shared/datasets")
    if Path("/work/shared/datasets").is_dir()
    else REPO.parent / "shared/datasets"
)
FLICKR = DATASETS / "flickr8k-1k"
IMAGENET = DATASETS / "imagenet-sample"
V42, V5 = "dualens-default-v4.2", "dualens-default-v5"
TARGETS = {"de R@10": 40.0, "en R@10": 52.0, "zero-shot top-1": 87.5, "warm p50 ms": 5.0}
ENGLISH_QUERIES = ["a dog running on the beach", "two children playing soccer", "a red car on a street"]
OTHER_QUERIES = ["Hund am Strand", "un chien sur la plage", "niños jugando al fútbol"]


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def v5_image_map() -> np.ndarray:
    """(512, 384): v5's image vector from v4.2's, as the shipped head stores it."""
    from safetensors.numpy import load_file

    from indexer.core.models.default_spec import V5_SPEC, head_path

    return load_file(str(head_path(V5_SPEC.head)))["v42_visual_map"]


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def quality(cache: Path) -> dict[str, dict[str, float]]:
    """Recall and zero-shot figures of both models."""
    from indexer.core.models import load_encoder
    from indexer.quality.data import labels_from_filenames, load_caption_dataset
    from indexer.quality.evaluate import EvalOptions, embed_image_files, embed_texts
    from indexer.quality.metrics import retrieval_metrics, zero_shot_metrics

    options = EvalOptions(cache_dir=cache)
    v42 = load_encoder(V42, threads=1)
    v5 = load_encoder(V5, threads=1)
    to_v5 = v5_image_map()
    out: dict[str, dict[str, float]] = {V42: {}, V5: {}}
    for lang, csv in (("de", "captions.de.csv"), ("en", "captions.csv")):
        data = load_caption_dataset(FLICKR / "images", FLICKR / csv)
        images = embed_image_files(v42, list(data.images), options)
        for name, encoder, imgs in ((V42, v42, images), (V5, v5, _normalise(images @ to_v5.T))):
            texts = embed_texts(encoder, list(data.captions), options)
            t2i = retrieval_metrics(texts @ imgs.T, data.caption_image).text_to_image
            for k, value in zip(
                (1, 5, 10), (t2i.recall_at_1, t2i.recall_at_5, t2i.recall_at_10), strict=True
            ):
                out[name][f"{lang} R@{k}"] = value
    labels = labels_from_filenames(IMAGENET)
    images = embed_image_files(v42, list(labels.images), options)
    prompts = [f"a photo of a {c}." for c in labels.classes]
    for name, encoder, imgs in ((V42, v42, images), (V5, v5, _normalise(images @ to_v5.T))):
        scores = imgs @ embed_texts(encoder, prompts, options).T
        out[name]["zero-shot top-1"] = zero_shot_metrics(scores, labels.labels).top1
    return out


def routing(captions: list[str], english: bool) -> float:
    """Percent of ``captions`` v5 routes to MiniLM (``english``) or to USE."""
    from indexer.core.models.language import is_english

    return 100.0 * float(np.mean([is_english(c) == english for c in captions]))


def warm_p50(model: str, queries: list[str], runs: int = 150) -> float:
    """ms per one-query ``embed_texts`` in a warm process (1 thread), median."""
    from indexer.core.models import DualEncoder

    encoder = DualEncoder(model, threads=1)
    encoder.embed_texts([*queries])  # both routes loaded
    times = []
    for i in range(runs):
        start = time.perf_counter()
        encoder.embed_texts([f"{queries[i % len(queries)]} {i % 7}"])
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def search_wall(model: str, runs: int) -> dict[str, float]:
    """p50 seconds of ``dualens search`` in a new process on 12 photos indexed with ``model``, for an
    English and for a German query."""
    dualens = str(REPO / ".venv" / "bin" / "dualens")
    photos = sorted((FLICKR / "images").iterdir())[:12]
    with tempfile.TemporaryDirectory(prefix="dualens-bench-ml-") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for p in photos:  # copies in a temporary folder: the scanner does not follow links
            shutil.copyfile(p, folder / p.name)
        data = str(Path(tmp) / "data")
        subprocess.run(
            [dualens, "index", "--data", data, "--model", model, str(folder)], check=True, capture_output=True
        )
        for query in (ENGLISH_QUERIES[0], OTHER_QUERIES[0]):  # the export, the page cache
            subprocess.run([dualens, "search", "--data", data, query], check=True, capture_output=True)
        times: dict[str, list[float]] = {"en": [], "de": []}
        for _ in range(runs):  # interleaved: a load spike hits both
            for lang, query in (("en", ENGLISH_QUERIES[0]), ("de", OTHER_QUERIES[0])):
                start = time.perf_counter()
                subprocess.run([dualens, "search", "--data", data, query], check=True, capture_output=True)
                times[lang].append(time.perf_counter() - start)
    return {lang: statistics.median(t) for lang, t in times.items()}


def verdict(name: str, value: float, lower_is_better: bool = False) -> str:
    target = TARGETS[name]
    met = value <= target if lower_is_better else value >= target
    return f"target {'<=' if lower_is_better else '>='} {target:g}: {'MET' if met else 'NOT MET'}"


def main() -> int:
    cache = REPO / "data" / "cache" / "eval"
    print(f"bench-multilingual: {V5} vs {V42} (baseline), same run; {_load()}", flush=True)
    parts = os.environ.get("BENCH_PARTS", "quality,speed")  # either, or both (the default)
    if "quality" in parts:
        quality_figures(cache)
    if "speed" in parts:
        speed_figures()
    return 0


def quality_figures(cache: Path) -> None:
    figures = quality(cache)
    for key in ("de R@1", "de R@5", "de R@10", "en R@1", "en R@5", "en R@10", "zero-shot top-1"):
        base, new = figures[V42][key], figures[V5][key]
        ratio = new / base if base else float("inf")
        tail = f"  {verdict(key, new)}" if key in TARGETS else ""
        print(f"  {key:16} v5 {new:6.1f}   v4.2 {base:6.1f}   ratio {ratio:5.2f}{tail}", flush=True)
    from indexer.quality.data import load_caption_dataset

    for lang, csv, english in (("de", "captions.de.csv", False), ("en", "captions.csv", True)):
        captions = list(load_caption_dataset(FLICKR / "images", FLICKR / csv).captions)
        tower = "MiniLM (English route)" if english else "USE"
        print(f"  routing: {routing(captions, english):5.1f} % of the {lang} captions to {tower}", flush=True)


def speed_figures() -> None:
    for lang, queries in (("en", ENGLISH_QUERIES), ("de/fr/es", OTHER_QUERIES)):
        warm = {m: warm_p50(m, queries) for m in (V42, V5)}
        print(
            f"  warm query p50 {lang:8} v5 {warm[V5]:6.2f} ms v4.2 {warm[V42]:6.2f} ms "
            f"ratio {warm[V5] / warm[V42]:5.2f}  "
            f"{verdict('warm p50 ms', warm[V5], lower_is_better=True)}",
            flush=True,
        )
    runs = int(os.environ.get("BENCH_RUNS", "5"))
    wall = {m: search_wall(m, runs) for m in (V42, V5)}
    for lang in ("en", "de"):
        new, base = wall[V5][lang], wall[V42][lang]
        met = "MET" if new <= base * 1.05 else "NOT MET"
        print(
            f"  new-process search p50 {lang} v5 {new:.2f} s v4.2 {base:.2f} s ratio {new / base:.2f}  "
            f"target no slower than v4.2 (within 5 %): {met} ({runs} runs, interleaved); {_load()}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
