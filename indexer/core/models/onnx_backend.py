"""The ONNX Runtime backend: a model's two towers exported once, then run without torch.

An export lives in its own folder (see :func:`export_dir`) keyed by the model's content
fingerprint, so a changed model is exported again. It holds ``image.onnx`` (pixels -> L2-normalised
embedding), ``text.onnx`` (token ids + mask -> L2-normalised embedding), the fast tokenizer and a
``manifest.json`` with everything else a query needs (dimension, logit scale and bias, padding,
preprocessing). Loading an export imports neither torch nor transformers, and each tower's session
is created on its first use: a text query never loads the image tower.

Exports are written to a temporary folder and renamed into place, and verified before that: the
ONNX vectors of sample images and captions must match the torch vectors (cosine >= 0.9999), and
the stand-alone tokenizer must give the same token ids as transformers'. A model that fails either
check is not exported; dualens keeps using torch for it and says so once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.core import settings
from indexer.core.errors import ModelError
from indexer.core.models.default_spec import visual_output
from indexer.core.models.language import is_english, prefetch
from indexer.core.models.preprocess import PreprocessConfig
from indexer.core.models.routed import (
    ENGLISH_GRAPH,
    ENGLISH_TOKENIZER,
    LANGID_FILE,
    EnglishRoute,
    OnnxEnglish,
    export_english,
    route_texts,
    verify_english,
)
from indexer.core.vectors import l2_normalise

log = logging.getLogger(__name__)

EXPORT_VERSION = 3  # 3: the image graph also returns the visual vector (default model)
OPSET = 17
MIN_COSINE = 0.9999
PRECISIONS = ("fp32", "int8")  # int8: the quantised towers of the export (quantize.py)
MANIFEST = "manifest.json"
SAMPLE_CAPTIONS = (
    "a dog on a beach at sunset",
    "a photo of a cat",
    "two people riding bicycles down a busy city street in the rain",
    "x",
    "Un château au bord d'un lac, 1999 — ünïcödé & symbols #42",
    "a very long caption " + "with many repeated words " * 40,
)


@dataclass(frozen=True)
class Manifest:
    """What a query needs besides the two graphs."""

    version: int
    model_id: str
    fingerprint: str
    dim: int
    logit_scale: float
    logit_bias: float | None
    is_sigmoid: bool
    max_length: int
    pad_to_max: bool  # SigLIP: pad every text to max_length
    pad_id: int
    pad_left: bool  # the tokenizer pads on the left (Gemma / SigLIP 2)
    text_inputs: tuple[str, ...]  # inputs of text.onnx, in order
    preprocess: dict[str, Any]
    min_cosine: float
    visual_dim: int = 0  # > 0: image.onnx has a second output, "visual"
    english: dict[str, Any] | None = None  # v5: the English route's graph and tokenizer (routed.py)

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        try:
            raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            raw["text_inputs"] = tuple(raw["text_inputs"])
            manifest = cls(**raw)
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return manifest if manifest.version == EXPORT_VERSION else None

    def preprocess_config(self) -> PreprocessConfig:
        p = dict(self.preprocess)
        return PreprocessConfig(
            size=(int(p["size"][0]), int(p["size"][1])),
            resize_shortest_edge=p["resize_shortest_edge"],
            mean=(float(p["mean"][0]), float(p["mean"][1]), float(p["mean"][2])),
            std=(float(p["std"][0]), float(p["std"][1]), float(p["std"][2])),
            resample=int(p["resample"]),
            rescale_factor=float(p["rescale_factor"]),
            patch_size=int(p["patch_size"]) if p.get("patch_size") else None,
        )


def export_dir(location: str, fingerprint: str) -> Path:
    """Where the export of a model lives: inside a local model folder (hidden), or for a hub model
    under the models folder of the data directory."""
    if os.path.isdir(location):
        return Path(location) / ".dualens-onnx" / fingerprint
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", location)
    return settings.default_model_dir().parent / "onnx" / slug / fingerprint


def available() -> bool:
    """Whether ONNX Runtime is installed."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def providers() -> list[str]:
    """Execution providers in order of preference: CUDA, then OpenVINO, then the CPU."""
    import onnxruntime as ort

    present = set(ort.get_available_providers())
    wanted = ("CUDAExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider")
    return [p for p in wanted if p in present] or ["CPUExecutionProvider"]


class OnnxTowers:
    """The exported towers of one model, each session created on first use."""

    def __init__(
        self, folder: Path, manifest: Manifest, threads: int | None = None, precision: str = "fp32"
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.threads = threads
        self.precision = precision  # "int8": the quantised graphs beside the fp32 ones (quantize.py)
        self._lock = threading.Lock()
        self._image: Any = None
        self._text: Any = None
        self._tokenizer: Any = None
        self._prefetched = False  # a routed model: a tower was started by prefetch_text
        self._english = (
            None if manifest.english is None else OnnxEnglish(folder, manifest.english, self._session)
        )

    @property
    def on_gpu(self) -> bool:
        return providers()[0] == "CUDAExecutionProvider"

    def graph(self, tower: str) -> Path:
        """The graph file of ``tower`` ("image" or "text") at this precision."""
        return self.folder / (f"{tower}.int8.onnx" if self.precision == "int8" else f"{tower}.onnx")

    def _session(self, name: str) -> Any:
        import onnxruntime as ort

        # the English route's graph is fp32 at every precision (only USE's text tower is quantised)
        path = (
            self.folder / ENGLISH_GRAPH if name == ENGLISH_GRAPH else self.graph(name.removesuffix(".onnx"))
        )
        options = ort.SessionOptions()
        # A text query pays for the session's start in a new process: basic optimisation halves it
        # (0.27 -> 0.15 s for MiniLM) at no measurable cost per query; indexing amortises the full set.
        text = name in ("text.onnx", ENGLISH_GRAPH)
        level = "ORT_ENABLE_BASIC" if text else "ORT_ENABLE_ALL"
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        if self.threads:
            options.intra_op_num_threads = int(self.threads)
        options.inter_op_num_threads = 1
        if text:
            # Queries come one at a time: idle threads must not spin (ORT's default) on cores that
            # other server processes need; measured: 2 API workers, p50 56 -> see benchmarks.md.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(path), options, providers=providers())
        except Exception as exc:  # a damaged export: a ModelError the caller can fall back on
            raise ModelError(f"cannot load the ONNX export {path}: {exc}") from exc

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return self.embed_pixels_pair(pixels)[0]

    def embed_pixels_pair(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Joint vectors and, when the model has them, visual ones (both normalised inside the graph)."""
        with self._lock:
            if self._image is None:
                self._image = self._session("image.onnx")
        # the graph ends in the L2 normalisation (the model boundary): its output is stored as is
        outputs = self._image.run(None, {"pixel_values": np.ascontiguousarray(pixels, dtype=np.float32)})
        return outputs[0], (outputs[1] if self.manifest.visual_dim else None)

    def _ensure_text(self) -> None:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = load_tokenizer(self.folder, self.manifest)
            if self._text is None:
                self._text = self._session("text.onnx")

    def _ensure_english(self) -> OnnxEnglish:
        english = self._english
        if english is None:
            raise ModelError("this model has no English text route")
        with self._lock:
            english.ensure()
        return english

    def prefetch_text(self, query: str | None = None) -> None:
        """Start the text tower in the background (ONNX Runtime releases the GIL while it loads), so
        a query's own work (opening the collection, its index) overlaps it; errors surface on use.
        A routed model (v5) starts the tower ``query`` takes; without a query, the multilingual one
        unless a tower was started already (a second, query-less call must not load the other)."""
        if self._english is not None:
            with self._lock:
                if query is None and self._prefetched:
                    return
                self._prefetched = True

        def start() -> None:
            with contextlib.suppress(ModelError):  # embed_texts tries again and reports it
                if self._english is not None and query is not None and self._is_english(query):
                    self._ensure_english()
                else:
                    self._ensure_text()

        # Not a daemon: a process that exits while ONNX Runtime builds the session (a query refused
        # early, e.g. an unknown --folder) aborted in its C++ teardown ("terminate called without an
        # active exception"); the interpreter now waits for the load to finish before exiting.
        threading.Thread(target=start, name="dualens-text-tower", daemon=False).start()

    def _tokens(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = load_tokenizer(self.folder, self.manifest)
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        return {name: feeds[name] for name in self.manifest.text_inputs}

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text vectors, each text through its route (a routed model: routed.py)."""
        if self._english is None:
            return self.embed_base_texts(texts)
        prefetch(self.folder / LANGID_FILE)  # the packed identifier, when the export has one
        return route_texts(texts, self.manifest.dim, self.embed_english, self.embed_base_texts)

    def _is_english(self, query: str) -> bool:
        prefetch(self.folder / LANGID_FILE)
        return is_english(query)

    def embed_base_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Through text.onnx, the model's own text tower (what ``get_text_features`` computes)."""
        self._ensure_text()
        return self._text.run(None, self._tokens(texts))[0]  # normalised inside the graph

    def embed_english(self, texts: Sequence[str]) -> np.ndarray:
        """Through the English route (a routed model only)."""
        return self._ensure_english().embed(texts)


def load_tokenizer(folder: Path, manifest: Manifest) -> Any:
    """The stand-alone fast tokenizer, padding and truncating exactly as the model's processor."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=manifest.max_length)
    direction = "left" if manifest.pad_left else "right"
    length = manifest.max_length if manifest.pad_to_max else None
    tokenizer.enable_padding(pad_id=manifest.pad_id, length=length, direction=direction)
    return tokenizer


def load(location: str, fingerprint: str, threads: int | None = None) -> OnnxTowers | None:
    """The export of this model version, or None when there is none (or it is unusable)."""
    folder = export_dir(location, fingerprint)
    manifest = Manifest.read(folder)
    if manifest is None or manifest.fingerprint != fingerprint:
        return None
    names: tuple[str, ...] = ("image.onnx", "text.onnx", "tokenizer.json")
    names += (ENGLISH_GRAPH, ENGLISH_TOKENIZER) if manifest.english is not None else ()
    if not all((folder / name).is_file() for name in names):
        return None
    return OnnxTowers(folder, manifest, threads)


# --------------------------------------------------------------------------------------------- export


@dataclass(frozen=True)
class TorchModel:
    """What an export needs of a model loaded with torch (see encoder.py)."""

    model: Any
    tokenizer: Any
    model_id: str
    dim: int
    logit_scale: float
    logit_bias: float | None
    is_sigmoid: bool
    max_length: int
    preprocess: PreprocessConfig
    visual_dim: int = 0
    english: EnglishRoute | None = None  # v5: the English route, exported beside the towers


def export(source: TorchModel, location: str, fingerprint: str, threads: int | None = None) -> OnnxTowers:
    """Export both towers, verify them against torch, and move them into place atomically.

    ModelError when the export cannot be made or does not match torch closely enough.
    """
    if not available():
        raise ModelError("ONNX Runtime is not installed (pip install onnxruntime)")
    target = export_dir(location, fingerprint)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Reference vectors first: tracing for the export can leave the torch model changed in place.
    reference = reference_vectors(source)
    english_reference = None if source.english is None else source.english.embed(SAMPLE_CAPTIONS)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        text_inputs = _export_graphs(source, tmp)
        english = None if source.english is None else export_english(source.english, tmp, OPSET)
        source.tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        pad_id = source.tokenizer.pad_token_id
        manifest = Manifest(
            version=EXPORT_VERSION,
            model_id=source.model_id,
            fingerprint=fingerprint,
            dim=source.dim,
            logit_scale=source.logit_scale,
            logit_bias=source.logit_bias,
            is_sigmoid=source.is_sigmoid,
            max_length=source.max_length,
            pad_to_max=source.is_sigmoid,
            pad_id=int(pad_id if pad_id is not None else 0),
            pad_left=getattr(source.tokenizer, "padding_side", "right") == "left",
            text_inputs=text_inputs,
            preprocess=asdict(source.preprocess),
            min_cosine=0.0,
            visual_dim=source.visual_dim,
            english=english,
        )
        towers = OnnxTowers(tmp, manifest, threads)
        cosine = verify(reference, towers)
        if source.english is not None and english_reference is not None and towers._english is not None:
            cosine = min(
                cosine, verify_english(english_reference, SAMPLE_CAPTIONS, source.english, towers._english)
            )
            if not cosine >= MIN_COSINE:
                raise ModelError(f"the English route's export differs (cosine {cosine:.6f} < {MIN_COSINE})")
        manifest = Manifest(**{**asdict(manifest), "min_cosine": cosine, "text_inputs": text_inputs})
        (tmp / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s to ONNX in %s (min cosine to torch %.6f)", source.model_id, target, cosine)
    return OnnxTowers(target, manifest, threads)


def _export_graphs(source: TorchModel, folder: Path) -> tuple[str, ...]:
    import torch

    model = source.model.float().eval()
    text_inputs = ("input_ids",) if source.is_sigmoid else ("input_ids", "attention_mask")

    class ImageTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
            inputs = image_inputs(pixel_values, source.preprocess.patch_size)
            output = self.model.get_image_features(**inputs)
            joint = torch.nn.functional.normalize(_pooled(output).float(), dim=-1)
            if not source.visual_dim:
                return (joint,)
            visual = torch.nn.functional.normalize(visual_output(output).float(), dim=-1)
            return joint, visual

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            features = _pooled(self.model.get_text_features(**dict(zip(text_inputs, inputs, strict=True))))
            return torch.nn.functional.normalize(features.float(), dim=-1)

    height, width = source.preprocess.size
    pixels = torch.zeros(2, 3, height, width)
    tokens = source.tokenizer(
        list(SAMPLE_CAPTIONS[:2]),
        padding="max_length" if source.is_sigmoid else True,
        truncation=True,
        max_length=source.max_length,
        return_tensors="pt",
    )
    batch = {0: "batch"}
    image_outputs = ["embedding", "visual"] if source.visual_dim else ["embedding"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings; the result is verified instead
        torch.onnx.export(
            ImageTower(),
            (pixels,),
            str(folder / "image.onnx"),
            input_names=["pixel_values"],
            output_names=image_outputs,
            dynamic_axes={"pixel_values": batch, **{name: batch for name in image_outputs}},
            opset_version=OPSET,
            dynamo=False,
        )
        torch.onnx.export(
            TextTower(),
            tuple(tokens[name] for name in text_inputs),
            str(folder / "text.onnx"),
            input_names=list(text_inputs),
            output_names=["embedding"],
            dynamic_axes={**{name: {0: "batch", 1: "tokens"} for name in text_inputs}, "embedding": batch},
            opset_version=OPSET,
            dynamo=False,
        )
    return text_inputs


@dataclass(frozen=True)
class Reference:
    """Torch's output on the sample images and captions, to hold an export against."""

    pixels: np.ndarray
    image_vectors: np.ndarray
    texts: tuple[str, ...]
    token_ids: np.ndarray
    text_vectors: np.ndarray
    visual_vectors: np.ndarray | None = None


def reference_vectors(source: TorchModel) -> Reference:
    import torch

    from indexer.core.models.preprocess import preprocess_image

    pixels = np.stack([preprocess_image(image, source.preprocess) for image in sample_images()])
    texts = list(SAMPLE_CAPTIONS)
    tokens = source.tokenizer(
        texts,
        padding="max_length" if source.is_sigmoid else True,
        truncation=True,
        max_length=source.max_length,
        return_tensors="pt",
    )
    names = ("input_ids",) if source.is_sigmoid else ("input_ids", "attention_mask", "token_type_ids")
    model = source.model
    device = next(model.parameters()).device
    with torch.no_grad():
        inputs = image_inputs(torch.from_numpy(pixels).to(device), source.preprocess.patch_size)
        image_output = model.get_image_features(**inputs)
        image = _pooled(image_output)
        visual = visual_output(image_output) if source.visual_dim else None
        text = _pooled(model.get_text_features(**{k: tokens[k].to(device) for k in names if k in tokens}))
    return Reference(
        pixels=pixels,
        image_vectors=l2_normalise(image.float().cpu().numpy()),
        texts=tuple(texts),
        token_ids=tokens["input_ids"].numpy(),
        text_vectors=l2_normalise(text.float().cpu().numpy()),
        visual_vectors=None if visual is None else l2_normalise(visual.float().cpu().numpy()),
    )


def verify(reference: Reference, towers: OnnxTowers) -> float:
    """The smallest cosine between torch and ONNX vectors of sample images and captions; ModelError
    below :data:`MIN_COSINE`, or when the stand-alone tokenizer disagrees with transformers'."""
    ours = towers._tokens(reference.texts)
    if not np.array_equal(ours["input_ids"], reference.token_ids):
        raise ModelError("the stand-alone tokenizer does not reproduce the model's token ids")
    joint, visual = towers.embed_pixels_pair(reference.pixels)
    if (visual is None) != (reference.visual_vectors is None):
        raise ModelError("the ONNX export and the model disagree on the visual vector")
    ref_visual = reference.visual_vectors
    visual_cosines = [] if visual is None or ref_visual is None else [(ref_visual * visual).sum(axis=1)]
    cosines = np.concatenate(
        [
            *visual_cosines,
            (reference.image_vectors * joint).sum(axis=1),
            (reference.text_vectors * towers.embed_base_texts(list(reference.texts))).sum(axis=1),
            # one caption at a time too: no padding at all, a path the batch above does not take
            (
                reference.text_vectors[:2]
                * np.concatenate([towers.embed_base_texts([t]) for t in reference.texts[:2]])
            ).sum(axis=1),
        ]
    )
    worst = float(cosines.min())
    if not worst >= MIN_COSINE:
        raise ModelError(f"the ONNX export differs from the model (cosine {worst:.6f} < {MIN_COSINE})")
    return worst


def sample_images() -> list[Any]:
    """Seeded, photo-like test images (smooth gradients, shapes, texture) in several aspect ratios."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(0)
    out = []
    for i, (w, h) in enumerate([(320, 240), (240, 320), (500, 300), (256, 256)]):
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x / w * 255, y / h * 255, (x + y) / (w + h) * 255], axis=-1)
        noise = rng.normal(0, 12, size=(h, w, 3))
        image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(4 + i):
            x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            size = int(rng.integers(20, 120)), int(rng.integers(20, 120))
            draw.ellipse((x0, y0, x0 + size[0], y0 + size[1]), fill=colour)
        out.append(image.filter(ImageFilter.GaussianBlur(1)))
    return out


def image_inputs(pixel_values: Any, patch_size: int | None) -> dict[str, Any]:
    """``get_image_features`` arguments for (n, 3, H, W) pixels: as they are, or for a patch model
    (SigLIP 2) the (n, patches, p*p*3) grid in its processor's order with its mask and shape."""
    if not patch_size:
        return {"pixel_values": pixel_values}
    import torch

    n, channels, height, width = pixel_values.shape
    rows, cols = height // patch_size, width // patch_size
    patches = pixel_values.reshape(n, channels, rows, patch_size, cols, patch_size)
    patches = patches.permute(0, 2, 4, 3, 5, 1).reshape(n, rows * cols, patch_size * patch_size * channels)
    return {
        "pixel_values": patches,
        "pixel_attention_mask": torch.ones((n, rows * cols), dtype=torch.int32, device=pixel_values.device),
        "spatial_shapes": torch.tensor([[rows, cols]] * n, dtype=torch.int64, device=pixel_values.device),
    }


def _pooled(output: Any) -> Any:
    pooled = getattr(output, "pooler_output", None)
    return output if pooled is None else pooled
