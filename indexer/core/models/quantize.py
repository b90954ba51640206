"""int8 towers: an ONNX Runtime quantisation of a model's fp32 export, made once and kept beside it.

The quantised graphs live in the fp32 export's own folder (keyed by the model's fingerprint), so a
changed model, whose export is made again, drops them too:

- ``text.int8.onnx``: dynamic quantisation (int8 weights, activations quantised per batch at run
  time) of the transformer's MatMuls, per output channel; the pooling, the projection head and the
  L2 normalisation stay float32.
- ``image.int8.onnx``: static quantisation (QDQ, per-channel int8 weights, uint8 activations whose
  ranges are calibrated on photos) of the convolutional tower; the projection head and the
  normalisation stay float32. Without calibration photos the image tower is quantised dynamically.
- ``int8.files.json``: each graph's size, time and SHA-256 as written.
- ``int8.json``: how each tower was made and its smallest cosine to the fp32 export on the sample
  images and captions (written last: the files are complete when it is there).

A damaged graph (another size, or another time and content than recorded; for a manifest of an
older release, a graph ONNX Runtime cannot load) is quantised again, with a one-line warning.

Invariant: an int8 tower returns L2-normalised float32 vectors, like the fp32 one (the graph's
float32 tail normalises them). Calibration photos must never come from a reporting set
(flickr8k-1k, imagenet-sample): by default they are ~128 photos of ``flickr8k-train``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.core.errors import ModelError
from indexer.core.models.onnx_backend import PRECISIONS, SAMPLE_CAPTIONS, OnnxTowers, sample_images
from indexer.core.models.preprocess import PreprocessConfig, preprocess_image

log = logging.getLogger(__name__)

INT8_VERSION = 1
INT8_MANIFEST = "int8.json"
INT8_RECORD = "int8.files.json"  # graph name -> [size, mtime_ns, sha256], as written
IMAGE_INT8 = "image.int8.onnx"
TEXT_INT8 = "text.int8.onnx"
CALIBRATION_ENV = "DUALENS_CALIBRATION_DIR"
CALIBRATION_PHOTOS = 128
CALIBRATION_BATCH = 16
# The smallest cosine to fp32 an int8 tower may give on the sample images and captions; measured on
# the default model: text >= 0.99, image >= 0.85 (the joint vector of a synthetic image), see
# docs/models.md. Below it the quantisation is refused (a ModelError), never used silently.
MIN_INT8_COSINE = 0.8
Checker = Callable[[Path], tuple[float, float]]


@dataclass(frozen=True)
class Int8Manifest:
    """How the int8 towers of one export were made."""

    version: int
    fingerprint: str  # the fp32 export's (the model's) fingerprint
    image_method: str  # "static" (calibrated) or "dynamic"
    calibration_photos: int
    min_cosine_image: float
    min_cosine_text: float

    @classmethod
    def read(cls, folder: Path) -> Int8Manifest | None:
        try:
            manifest = cls(**json.loads((folder / INT8_MANIFEST).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        return manifest if manifest.version == INT8_VERSION else None


def check_precision(precision: str) -> str:
    """``precision`` itself when known; ModelError (one line) otherwise."""
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def is_built(folder: Path, fingerprint: str) -> bool:
    """Whether the int8 towers of the export in ``folder`` are there, complete and intact."""
    return _unusable(folder, fingerprint) is None


def _unusable(folder: Path, fingerprint: str) -> str | None:
    """None when the int8 towers in ``folder`` can be used; "" when they are not made (or made of
    another model); else why they are damaged."""
    manifest = Int8Manifest.read(folder)
    if manifest is None or manifest.fingerprint != fingerprint:
        return ""
    record = graph_records(folder)
    for name in (IMAGE_INT8, TEXT_INT8):
        why = _damage(folder / name, record.get(name))
        if why:
            return why
    if not record:  # made by an older release: the graphs loaded, then recorded
        why = _load_failure(folder)
        if why:
            return why
    if any(_stale(folder / name, record.get(name)) for name in (IMAGE_INT8, TEXT_INT8)):
        with contextlib.suppress(OSError):  # recorded again (a read-only folder: checked again next time)
            _write_records(folder)
    return None


def graph_records(folder: Path) -> dict[str, list[Any]]:
    """The int8 graphs' size, time and SHA-256 as written ({} when not recorded); an entry not of
    that form is left out (read as not recorded)."""
    try:
        record = json.loads((folder / INT8_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    return {name: entry for name, entry in record.items() if _well_formed(entry)}


def _well_formed(entry: Any) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in entry[:2])
        and isinstance(entry[2], str)
    )


def _stale(path: Path, record: list[Any] | None) -> bool:
    """Whether the record of an intact graph lacks its current time (copied, or an older manifest)."""
    return record is None or path.stat().st_mtime_ns != record[1]


def _damage(path: Path, record: list[Any] | None) -> str | None:
    """Why the graph at ``path`` is not the one ``record`` (size, mtime_ns, sha256) describes."""
    try:
        st = path.stat()
    except OSError:
        return f"{path.name} is missing"
    if record is None:
        return None
    size, mtime_ns, digest = record
    if st.st_size != size:
        return f"{path.name} has {st.st_size} bytes, not {size}"
    if st.st_mtime_ns != mtime_ns and _sha256(path) != digest:  # the hash only when touched since
        return f"{path.name} is not the graph that was made"
    return None


def _load_failure(folder: Path) -> str | None:
    """Why ONNX Runtime cannot load one of the int8 graphs (None: both load)."""
    import onnxruntime as ort

    for name in (IMAGE_INT8, TEXT_INT8):
        try:
            ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])
        except Exception as exc:  # any load failure is a damaged file
            return f"{name} cannot be loaded ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_records(folder: Path) -> None:
    """Record the size, time and hash of the graphs as they are in ``folder`` now."""
    record = {}
    for name in (IMAGE_INT8, TEXT_INT8):
        st = (folder / name).stat()
        record[name] = [st.st_size, st.st_mtime_ns, _sha256(folder / name)]
    _write_atomically(folder / INT8_RECORD, json.dumps(record, indent=2))


def calibration_photos(limit: int = CALIBRATION_PHOTOS) -> list[Path]:
    """Seeded sample of calibration photos: ``$DUALENS_CALIBRATION_DIR``, else the shared
    ``flickr8k-train/images`` found above the working directory or this checkout; [] when none."""
    folder = _calibration_dir()
    if folder is None:
        return []
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if len(photos) <= limit:
        return photos
    chosen = np.random.default_rng(0).choice(len(photos), limit, replace=False)
    return [photos[int(i)] for i in sorted(chosen)]


def _calibration_dir() -> Path | None:
    explicit = os.environ.get(CALIBRATION_ENV)
    if explicit:
        return Path(explicit) if Path(explicit).is_dir() else None
    for start in (Path.cwd(), Path(__file__).resolve()):
        for parent in (start, *start.parents):
            candidate = parent / "shared" / "datasets" / "flickr8k-train" / "images"
            if candidate.is_dir():
                return candidate
    return None


def int8_towers(fp32: OnnxTowers, *, build_missing: bool = True) -> OnnxTowers | None:
    """The int8 towers of an fp32 export, quantised now when missing (None: missing, not built)."""
    folder, fingerprint = fp32.folder, fp32.manifest.fingerprint
    why = _unusable(folder, fingerprint)
    if why is not None:
        if not build_missing:
            return None
        if why:
            log.warning("the int8 towers in %s are damaged (%s); quantising them again", folder, why)
        config = fp32.manifest.preprocess_config()
        pixels = [_pixels(path, config) for path in calibration_photos()]
        build(folder, fingerprint, pixels, lambda work: compare(fp32, work))
    return OnnxTowers(folder, fp32.manifest, fp32.threads, precision="int8")


def _pixels(path: Path, config: PreprocessConfig) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return preprocess_image(image.convert("RGB"), config)


def compare(fp32: OnnxTowers, folder: Path) -> tuple[float, float]:
    """The smallest cosines (image, text) between the fp32 towers and the int8 ones in ``folder`` on
    the export's sample images (joint and visual vectors) and captions."""
    candidate = OnnxTowers(folder, fp32.manifest, fp32.threads, precision="int8")
    config = fp32.manifest.preprocess_config()
    pixels = np.stack([preprocess_image(image, config) for image in sample_images()])
    (joint, visual), (joint8, visual8) = fp32.embed_pixels_pair(pixels), candidate.embed_pixels_pair(pixels)
    image = [(joint * joint8).sum(axis=1)]
    if visual is not None and visual8 is not None:
        image.append((visual * visual8).sum(axis=1))
    texts = list(SAMPLE_CAPTIONS)
    text = (fp32.embed_texts(texts) * candidate.embed_texts(texts)).sum(axis=1)
    return float(np.concatenate(image).min()), float(text.min())


def build(folder: Path, fingerprint: str, calibration: Sequence[np.ndarray], check: Checker) -> Int8Manifest:
    """Quantise ``folder``'s fp32 towers into it, atomically. ``calibration``: preprocessed pixel
    arrays (3, H, W) of calibration photos ([]: the image tower is quantised dynamically).
    ``check(work_folder) -> (min image cosine, min text cosine)`` compares the new towers (in a
    work folder with the tokenizer) with the fp32 ones; ModelError, nothing left behind, below
    :data:`MIN_INT8_COSINE`."""
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError as exc:  # the `onnx` package is missing
        raise ModelError(f"int8 towers need onnxruntime's quantisation tools: {exc}") from exc
    work = Path(tempfile.mkdtemp(prefix=".int8-", dir=folder))
    try:
        image, text = work / IMAGE_INT8, work / TEXT_INT8
        shutil.copyfile(folder / "tokenizer.json", work / "tokenizer.json")
        _quantise_text(folder / "text.onnx", text, work)
        method = _quantise_image(folder / "image.onnx", image, work, calibration)
        cos_image, cos_text = check(work)
        worst = min(cos_image, cos_text)
        if not worst >= MIN_INT8_COSINE:
            raise ModelError(f"the int8 towers differ too much from fp32 (cosine {worst:.3f})")
        manifest = Int8Manifest(INT8_VERSION, fingerprint, method, len(calibration), cos_image, cos_text)
        (folder / INT8_MANIFEST).unlink(missing_ok=True)  # made again: no manifest over the new graphs
        (folder / INT8_RECORD).unlink(missing_ok=True)
        os.replace(image, folder / IMAGE_INT8)
        os.replace(text, folder / TEXT_INT8)
        _write_records(folder)
        _write_atomically(folder / INT8_MANIFEST, json.dumps(asdict(manifest), indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("int8 towers of %s: %s image tower, min cosine to fp32 %.4f", folder, method, worst)
    return manifest


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _prepared(source: Path, work: Path, name: str) -> Path:
    """The graph with shapes inferred and constants folded: the quantiser's recommended input."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = work / f"{name}.pre.onnx"
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    return prepared


def _float_tail(model_path: Path, body: str) -> list[str]:
    """Nodes outside the tower's body (pooling, projection head, normalisation), kept float32; []
    when no node is named for the body (a graph of another family: every node may be quantised)."""
    import onnx

    names = [node.name for node in onnx.load(str(model_path), load_external_data=False).graph.node]
    tail = [name for name in names if body not in name]
    return tail if len(tail) < len(names) else []


def _quantise_text(source: Path, target: Path, work: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    prepared = _prepared(source, work, "text")
    quantize_dynamic(
        str(prepared),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_exclude=_float_tail(prepared, "text_model/encoder/"),
    )
    prepared.unlink()


def _quantise_image(source: Path, target: Path, work: Path, calibration: Sequence[np.ndarray]) -> str:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    prepared = _prepared(source, work, "image")
    tail = _float_tail(prepared, "vision_model/")
    if calibration:
        quantize_static(
            str(prepared),
            str(target),
            _calibration_reader(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=tail,
        )
        method = "static"
    else:
        quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QUInt8, nodes_to_exclude=tail)
        method = "dynamic"
    prepared.unlink()
    return method


def _calibration_reader(pixels: Sequence[np.ndarray]) -> Any:
    """An ONNX Runtime CalibrationDataReader over preprocessed photos, in small batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches: Iterator[dict[str, np.ndarray]] = iter(
                {"pixel_values": np.stack(pixels[i : i + CALIBRATION_BATCH]).astype(np.float32)}
                for i in range(0, len(pixels), CALIBRATION_BATCH)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    return Reader()
