"""`make bench-ocr`: text in photos, measured with its baselines in the same run.

    engines     word recall (text >= 20 px) and ms/photo of rapidocr-onnxruntime vs Tesseract, on rendered
                words over flickr8k-train and imagenet-sample backgrounds (indexer/quality/ocr_bench.py)
    search      precision@10 of word queries over an indexed rendered set, OCR on (with and without the
                text gate) vs off
    fusion      flickr8k-1k text->image recall@10 with fusion on vs off (the eval code and its cache)
    throughput  indexing photos/s with OCR off, on behind the text gate (indexer/ocr_gate.py) and on for
                every photo: the imagenet-sample photos of a subset without text, and the text-heavy set;
                the gate's recall on photos with text (rendered, and imagenet-sample photos with words)

Sets are generated into a temp dir (seeded), never into the repository. Not a test: it prints figures.
Options (environment): BENCH_OCR_COUNT (photos per rendered set, default 60), BENCH_OCR_STAGES
(comma-separated, default all), BENCH_OCR_SEED (default 1; the engines were tuned on seed 7),
BENCH_OCR_FLICKR (flickr8k-1k photos read by the engine for the fusion check, default 1000).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def _shared() -> Path:
    for parent in (REPO, *REPO.parents):
        candidate = parent / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    return REPO / ".." / "shared" / "datasets"


SHARED = _shared()
SETS = {"flickr8k-train": SHARED / "flickr8k-train" / "images", "imagenet-sample": SHARED / "imagenet-sample"}
FLICKR = SHARED / "flickr8k-1k"
ENGINE = "rapidocr-onnxruntime 1.4.4"
TEXTS_FILE = "texts-rapidocr.json"  # the engine's text per photo of a rendered set, kept beside it


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


def _verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def rendered_set(name: str, count: int, seed: int) -> Path:
    from indexer.quality import ocr_bench

    out = Path(tempfile.gettempdir()) / f"dualens-bench-ocr-{name}-{count}-{seed}"
    if not (out / ocr_bench.TRUTH_FILE).exists():
        ocr_bench.generate(out, ocr_bench.backgrounds(SETS[name]), count, seed)
    return out


def engines(count: int, seed: int) -> None:
    from indexer.quality import ocr_bench

    edges = [20, 30, 45, 60, 81]
    for name in SETS:
        photos = ocr_bench.load(rendered_set(name, count, seed))
        results = [ocr_bench.measure(ENGINE, ocr_bench.rapidocr_engine(), photos)]
        if shutil.which("tesseract"):  # Debian tesseract-ocr: the engine compared with, not a dependency
            results.append(ocr_bench.measure("tesseract 5 (psm 11)", ocr_bench.tesseract_engine(11), photos))
        else:
            print("engines: tesseract is not installed (apt-get install tesseract-ocr): no comparison")
        (rendered_set(name, count, seed) / TEXTS_FILE).write_text(json.dumps(results[0].texts))
        base = results[-1]
        for result in results:
            buckets = ", ".join(
                f"{lo}-{hi - 1}px {r:.2f}"
                for lo, hi, r in zip(
                    edges, edges[1:], ocr_bench.recall_by_size(result, photos, edges), strict=False
                )
                if not math.isnan(r)
            )
            print(
                f"engines [{name}, {len(photos)} photos, {result.words} words >= 20 px] {result.name}: "
                f"word recall {result.recall:.3f} ({buckets}); {result.ms_per_photo:.0f} ms/photo; {_load()}"
            )
        best = results[0]
        print(
            f"  rapidocr vs tesseract: recall {best.recall:.3f} vs {base.recall:.3f}, "
            f"time ratio {best.ms_per_photo / max(base.ms_per_photo, 1e-9):.2f}x; "
            f"target word recall >= 0.90: {_verdict(best.recall >= 0.9)}",
            flush=True,
        )


def _engine_texts(folder: Path) -> dict[str, str]:
    """The engine's text of each photo of a rendered set (read now unless the engines stage kept it)."""
    from indexer.quality import ocr_bench

    kept = folder / TEXTS_FILE
    if not kept.exists():
        read = ocr_bench.rapidocr_engine()
        kept.write_text(json.dumps({p.path.name: read(p.path) for p in ocr_bench.load(folder)}))
    return dict(json.loads(kept.read_text()))


def _write_texts(data: Path, texts: dict[Path, str]) -> None:
    """Store recognised text as the OCR stage does (its engine's name, status ok / none)."""
    from indexer.core.storage.collection import Collection
    from indexer.core.storage.schema import TextStatus
    from indexer.core.storage.text import TextResult

    collection = Collection.open(data)
    try:
        results = []
        for path, text in texts.items():
            photo = collection.photo_by_path(str(path))
            status = TextStatus.OK if text.strip() else TextStatus.NONE
            if photo is not None:
                results.append(TextResult(int(photo.id), photo.content_hash, ENGINE, status, text))
        collection.write_texts(results)
    finally:
        collection.close()


def _gate_keeps(data: Path) -> dict[str, bool]:
    """Whether the collection's text gate lets each photo (by path) through to the engine."""
    from sqlalchemy import select

    from indexer.core.storage.collection import Collection
    from indexer.core.storage.schema import Photo
    from indexer.core.storage.spaces import VISUAL
    from indexer.ocr_gate import gate_for

    with Collection.open(data) as c:
        facts = c.database.facts()
        gate = gate_for(facts.model_id, facts.precision, environ={"DUALENS_OCR": "gate"})
        with c.session() as s:
            path_of = {int(r.id): str(r.path) for r in s.execute(select(Photo.id, Photo.path))}
        ids, vectors = c.indexed_vectors(list(path_of), space=VISUAL)
    if gate is None:
        return {path: True for path in path_of.values()}
    return {path_of[int(i)]: bool(k) for i, k in zip(ids, gate.keep(vectors), strict=True)}


def _precision_at_10(searcher: Any, truth: dict[str, set[str]]) -> float:
    """Mean over the vocabulary's words of |top 10 ∩ photos with the word| / min(10, photos with it)."""
    from indexer.quality import ocr_bench

    values = []
    for word in ocr_bench.VOCABULARY:
        relevant = {path for path, words in truth.items() if word in words}
        if relevant:
            top = {h.path for h in searcher.search(word, k=10)}
            values.append(len(top & relevant) / min(10, len(relevant)))
    return sum(values) / len(values)


def search(count: int, seed: int) -> None:
    """Both rendered sets in one collection (default model): word queries with and without the text."""
    from indexer.core.models import load_encoder
    from indexer.pipeline import IndexOptions, run_index
    from indexer.quality import ocr_bench
    from search import Searcher

    folders = [rendered_set(name, count, seed) for name in SETS]
    truth = {
        str(p.path.resolve()): {w.word for w in p.words} for folder in folders for p in ocr_bench.load(folder)
    }
    encoder = load_encoder("default")
    no_ocr: dict[str, Any] = {"ocr": False} if "ocr" in IndexOptions.__dataclass_fields__ else {}
    options = IndexOptions(**no_ocr)
    with tempfile.TemporaryDirectory(prefix="dualens-bench-ocr-") as tmp:
        data = Path(tmp) / "data"
        run_index(data, folders, options, encoder=encoder)
        with Searcher.open(data, encoder=encoder) as searcher:
            without = _precision_at_10(searcher, truth)
        texts = {(f / name).resolve(): text for f in folders for name, text in _engine_texts(f).items()}
        let_through = _gate_keeps(data)
        _write_texts(data, {p: t if let_through.get(str(p), True) else "" for p, t in texts.items()})
        with Searcher.open(data, encoder=encoder) as searcher:
            gated = _precision_at_10(searcher, truth)
        _write_texts(data, texts)
        with Searcher.open(data, encoder=encoder) as searcher:
            with_text = _precision_at_10(searcher, truth)
    print(
        f"search [{len(truth)} rendered photos] precision@10 with OCR behind the text gate {gated:.3f} "
        f"({sum(let_through.values())} of {len(let_through)} photos let through) vs OCR on every photo "
        f"{with_text:.3f}; target >= 0.9: {_verdict(gated >= 0.9)}",
        flush=True,
    )
    print(
        f"search [{len(truth)} rendered photos, {len(ocr_bench.VOCABULARY)} word queries] precision@10 "
        f"(of min(10, photos with the word)): with OCR {with_text:.3f}, without (vectors only) "
        f"{without:.3f}, "
        f"ratio {with_text / max(without, 1e-9):.1f}x; target >= 0.9: {_verdict(with_text >= 0.9)}",
        flush=True,
    )


def fusion(count: int, seed: int) -> None:
    """flickr8k-1k text->image R@10 (dualens eval's vectors and cache), fused vs vectors alone.

    The word side is the storage's own normal form and AND rule (indexer/core/storage/text.py) applied
    in memory to the engine's text of the photos (a photo matches a caption holding every caption word;
    matches ordered by cosine), fused by search/text_terms.py's RRF over the top MIN_CANDIDATES."""
    from indexer.core.models import load_encoder
    from indexer.core.storage.text import tokens
    from indexer.quality import ocr_bench
    from indexer.quality.data import load_caption_dataset
    from indexer.quality.evaluate import EvalOptions, embed_image_files, embed_texts, eval_cache_dir
    from indexer.quality.metrics import retrieval_metrics
    from search.searcher import MIN_CANDIDATES
    from search.text_terms import fuse

    dataset = load_caption_dataset(FLICKR / "images", FLICKR / "captions.csv")
    encoder = load_encoder("default")
    options = EvalOptions(cache_dir=eval_cache_dir(REPO / "data"))
    sim = (
        embed_texts(encoder, dataset.captions, options)
        @ embed_image_files(encoder, dataset.images, options).T
    )
    base = retrieval_metrics(sim, dataset.caption_image).text_to_image.recall_at_10
    n_read = min(len(dataset.images), int(os.environ.get("BENCH_OCR_FLICKR", "1000")))
    read = ocr_bench.rapidocr_engine()
    words = [set(tokens(read(path))) for path in dataset.images[:n_read]]
    hits = matched = 0
    for c, caption in enumerate(dataset.captions):
        order = [int(i) for i in np.argsort(-sim[c], kind="stable")[:MIN_CANDIDATES]]
        wanted = set(tokens(caption))
        by_words = sorted(
            (i for i in range(n_read) if wanted and wanted <= words[i]), key=lambda i: -sim[c, i]
        )
        matched += bool(by_words)
        hits += int(dataset.caption_image[c]) in fuse(order, by_words)[:10]
    fused = 100.0 * hits / len(dataset.captions)
    print(
        f"fusion [flickr8k-1k, {len(dataset.captions)} captions, {n_read} photos read, {matched} captions "
        f"with a word match] text->image R@10 fused {fused:.2f} vs vectors alone {base:.2f} "
        f"(delta {fused - base:+.2f}); "
        f"target unchanged +-0.5: {_verdict(abs(fused - base) <= 0.5)}",
        flush=True,
    )


MODES = {"off": "off", "gate": "gate", "all": "all"}  # $DUALENS_OCR of each run: no OCR, gated, every photo


def _rates(folder: Path, tmp: Path, encoder: Any, count: int) -> dict[str, float]:
    """Photos/s of `dualens index` of ``folder`` (a new collection each) with OCR off, on behind the
    gate ($DUALENS_OCR=gate), and on for every photo ($DUALENS_OCR=all), in that order, in this run."""
    from indexer.pipeline import IndexOptions, run_index

    rates = {}
    for mode, value in MODES.items():
        os.environ["DUALENS_OCR"] = value
        data = tmp / f"data-{folder.name}-{mode}"
        start = time.perf_counter()
        run_index(data, [folder], IndexOptions(), encoder=encoder)
        rates[mode] = count / (time.perf_counter() - start)
    os.environ["DUALENS_OCR"] = "on"
    return rates


def _copies(paths: list[Path], folder: Path) -> Path:
    folder.mkdir()
    for path in paths:
        shutil.copyfile(path, folder / path.name)  # copies: the scan follows no link out of a root
    return folder


def _stored(data: Path) -> dict[str, tuple[str, str]]:
    """Each photo's stored (engine, text) by file name."""
    from sqlalchemy import select

    from indexer.core.storage.collection import Collection
    from indexer.core.storage.schema import Photo, PhotoText

    with Collection.open(data) as c, c.session() as s:
        rows = s.execute(select(Photo.path, PhotoText.engine, PhotoText.text).join(PhotoText))
        return {Path(r.path).name: (str(r.engine), str(r.text)) for r in rows}


def throughput(count: int, seed: int) -> None:
    """Photos/s of `dualens index` with OCR off, on with the text gate, and on for every photo: photos
    without text (the imagenet-sample photos of the first ``count`` in which the engine reads no word)
    and the text-heavy rendered set; the gate's recall on the photos with text."""
    from indexer.core.models import load_encoder
    from indexer.ocr import RapidOcrReader, read_photo
    from indexer.quality import ocr_bench

    encoder = load_encoder("default")
    reader = RapidOcrReader()
    first = sorted(SETS["imagenet-sample"].iterdir())[:count]
    with_text = {p.name for p in first if ocr_bench.tokens(read_photo(reader, str(p)).text)}
    rendered = rendered_set("imagenet-sample", count, seed)
    truth = {p.path.name: {w.word for w in p.words} for p in ocr_bench.load(rendered)}
    with tempfile.TemporaryDirectory(prefix="dualens-bench-ocr-") as tmp:
        plain = _copies([p for p in first if p.name not in with_text], Path(tmp) / "no-text")
        texty = _copies([p for p in first if p.name in with_text], Path(tmp) / "real-text")
        for label, folder, n in (
            (
                f"imagenet-sample without text ({count - len(with_text)} of {count})",
                plain,
                count - len(with_text),
            ),
            ("text-heavy rendered", rendered, len(truth)),
        ):
            rates = _rates(folder, Path(tmp), encoder, n)
            ratio = rates["gate"] / rates["off"]
            target = f"; target gate >= 0.8x off: {_verdict(ratio >= 0.8)}" if folder is plain else ""
            stored = _stored(Path(tmp) / f"data-{folder.name}-gate")
            target += f"; gate skipped {sum(e.startswith('gate ') for e, _ in stored.values())} of {n}"
            print(
                f"throughput [{label}] OCR off {rates['off']:.2f} photos/s, on with gate {rates['gate']:.2f} "
                f"({ratio:.2f}x off), on without gate {rates['all']:.2f} ({rates['all'] / rates['off']:.2f}x)"
                f"{target}; {_load()}",
                flush=True,
            )
        gated = _stored(Path(tmp) / f"data-{rendered.name}-gate")
        everything = _stored(Path(tmp) / f"data-{rendered.name}-all")
        kept = sum(not gated[n][0].startswith("gate ") for n, words in truth.items() if words and n in gated)
        photos = sum(bool(words) for n, words in truth.items() if n in gated)
        words = sum(len(w) for w in truth.values())
        found_gate = sum(len(w & ocr_bench.tokens(gated.get(n, ("", ""))[1])) for n, w in truth.items())
        found_all = sum(len(w & ocr_bench.tokens(everything.get(n, ("", ""))[1])) for n, w in truth.items())
        print(
            f"gate [text-heavy rendered, {photos} photos with words] recall (photos let through) "
            f"{kept / max(1, photos):.3f}; word recall with gate {found_gate / max(1, words):.3f} vs without "
            f"{found_all / max(1, words):.3f}",
            flush=True,
        )
        _gate_on_real_text(texty, Path(tmp), encoder, len(with_text))


def _gate_on_real_text(folder: Path, tmp: Path, encoder: Any, n: int) -> None:
    """Which of the imagenet-sample photos with text (words the engine read) the gate lets through."""
    from indexer.pipeline import IndexOptions, run_index

    os.environ["DUALENS_OCR"] = "gate"
    run_index(tmp / "data-real-text", [folder], IndexOptions(), encoder=encoder)
    stored = _stored(tmp / "data-real-text")
    kept = sum(not engine.startswith("gate ") for engine, _ in stored.values())
    print(f"gate [imagenet-sample photos with words read, {n}] recall (let through) {kept / max(1, n):.3f}")


STAGES = {"engines": engines, "search": search, "fusion": fusion, "throughput": throughput}


def main() -> int:
    if not all(path.is_dir() for path in SETS.values()):
        print(f"skipped: the shared datasets are absent under {SHARED}")
        return 0
    count = int(os.environ.get("BENCH_OCR_COUNT", "60"))
    seed = int(os.environ.get("BENCH_OCR_SEED", "1"))
    wanted = os.environ.get("BENCH_OCR_STAGES", ",".join(STAGES)).split(",")
    print(
        f"bench-ocr: {count} photos per rendered set, seed {seed}; 2-core CPU, no GPU; {_load()}", flush=True
    )
    for stage in wanted:
        STAGES[stage.strip()](count, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
