"""DualEncoder: one interface over any Hugging Face image-text dual encoder."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from indexer.core.errors import ModelError
from indexer.core.models import onnx_backend
from indexer.core.models.default_spec import FEATURE_DIM, is_current, visual_dim_of, visual_output
from indexer.core.models.preprocess import PreprocessConfig, preprocess_image
from indexer.core.models.resolve import ResolvedModel, local_fingerprint, resolve_model
from indexer.core.models.routed import EnglishRoute, has_english_route, load_english_route, route_texts
from indexer.core.settings import BACKENDS
from indexer.core.vectors import l2_normalise

if TYPE_CHECKING:  # torch and transformers load with the weights, keeping `import` cheap for the CLI
    import torch

log = logging.getLogger(__name__)

SIGMOID_MODEL_TYPES = frozenset({"siglip", "siglip2"})


@dataclass
class _Loaded:
    model: Any  # a transformers PreTrainedModel with get_image_features / get_text_features
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    dim: int
    logit_scale: float
    logit_bias: float | None
    is_sigmoid: bool
    max_length: int
    patch_size: int | None = None  # a patch-grid model (SigLIP 2): see onnx_backend.image_inputs
    visual_dim: int = 0  # > 0: the image tower's own pooled features, for image-to-image search
    english_location: str | None = None  # a routed model (v5): its folder, whose English route loads lazily


class _TorchEngine:
    """A model run by PyTorch (CUDA in half precision when available, else the CPU)."""

    name = "torch"

    def __init__(self, state: _Loaded) -> None:
        self.state = state
        self._english: EnglishRoute | None = None
        self._lock = threading.Lock()

    @property
    def on_gpu(self) -> bool:
        return self.state.device.type != "cpu"

    def embed_pixels(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        state = self.state
        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
            if state.device.type == "cuda":
                tensor = tensor.pin_memory()  # page-locked: the copy to the GPU runs asynchronously
            tensor = tensor.to(device=state.device, dtype=state.dtype, non_blocking=True)
            if state.patch_size is None:
                # channels-last input: ~1.5x faster convolutional towers on CPU (indexer benchmark)
                tensor = tensor.contiguous(memory_format=torch.channels_last)
            inputs = onnx_backend.image_inputs(tensor, state.patch_size)
            output = state.model.get_image_features(**inputs)
            visual = _normalise(visual_output(output)) if state.visual_dim else None
            return _normalise(_pooled(output)), visual

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Each text through its route on a routed model (routed.py), else the model's text tower."""
        if self.state.english_location is None:
            return self._embed_base_texts(texts)
        return route_texts(texts, self.state.dim, self._embed_english, self._embed_base_texts)

    def _embed_english(self, texts: list[str]) -> np.ndarray:
        """The English route: float32 on the CPU whatever the device (a query is a few tokens)."""
        with self._lock:
            if self._english is None:
                assert self.state.english_location is not None
                self._english = load_english_route(self.state.english_location)
        return self._english.embed(texts)

    def _embed_base_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        state = self.state
        padding: str | bool = "max_length" if state.is_sigmoid else True
        tokens = state.tokenizer(
            texts, padding=padding, truncation=True, max_length=state.max_length, return_tensors="pt"
        )
        # SigLIP was trained on max_length padding without an attention mask.
        names = ("input_ids",) if state.is_sigmoid else ("input_ids", "attention_mask", "token_type_ids")
        inputs = {k: tokens[k].to(state.device) for k in names if k in tokens}
        with torch.inference_mode():
            return _normalise(_pooled(state.model.get_text_features(**inputs)))


class _OnnxEngine:
    """A model run by ONNX Runtime from its export (no torch, no transformers)."""

    name = "onnx"

    def __init__(self, towers: onnx_backend.OnnxTowers) -> None:
        self.towers = towers

    @property
    def on_gpu(self) -> bool:
        return self.towers.on_gpu

    def embed_pixels(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self.towers.embed_pixels_pair(pixels)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return self.towers.embed_texts(texts)


class DualEncoder:
    """Images and texts to comparable L2-normalised float32 vectors.

    Construction is cheap; the weights load on first use (or :meth:`load`). ``backend``: ``torch``,
    ``onnx`` (ONNX Runtime, from an export made once next to the model), or ``auto``: ONNX unless
    only PyTorch can use the machine's GPU. A model whose export fails its check stays on torch.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "default",
        *,
        device: str | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        backend: str = "auto",
        precision: str = "fp32",
    ) -> None:
        if batch_size < 1:
            raise ModelError(f"batch size must be at least 1, got {batch_size}")
        if backend not in BACKENDS:
            raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if threads is not None and threads < 1:
            raise ModelError(f"thread count must be at least 1, got {threads}")
        if precision not in onnx_backend.PRECISIONS:
            raise ModelError(
                f"unknown precision {precision!r}; choose one of {', '.join(onnx_backend.PRECISIONS)}"
            )
        self.precision = precision  # int8: the ONNX export's quantised towers (quantize.py)
        self._resolved: ResolvedModel = resolve_model(model)
        self._device_name = device
        self._threads = threads
        self._backend = backend
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._engine: _TorchEngine | _OnnxEngine | None = None
        self._export: onnx_backend.OnnxTowers | bool | None = False  # False: not looked for yet
        self._chosen: str | None = None  # the backend _choose_backend settled on
        self._preprocess: PreprocessConfig | None = self._resolved.preprocess
        self._fingerprint: str | None = None

    # --- cheap metadata -------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self._resolved.model_id

    @property
    def fingerprint(self) -> str | None:
        """Content hash of a local model directory (None for the built-in default, whose id carries
        its version, and for hub ids): a collection records it to notice a model changed in place."""
        if self._fingerprint is None and not self._resolved.is_default and os.path.isdir(self.location):
            self._fingerprint = local_fingerprint(self.location)
        return self._fingerprint

    @property
    def location(self) -> str:
        """The directory or hub id the weights load from."""
        return self._resolved.location

    @property
    def preprocess_config(self) -> PreprocessConfig:
        if self._preprocess is None:
            export = self._existing_export()
            if export is not None:  # known without importing transformers
                self._preprocess = export.manifest.preprocess_config()
            else:
                self._preprocess = PreprocessConfig.from_pretrained(self._resolved.location)
        return self._preprocess

    @property
    def backend(self) -> str:
        """The backend in use: ``torch`` or ``onnx`` (loads the model)."""
        return self._state_engine().name

    def uses_gpu(self) -> bool:
        """Whether inference runs on a GPU; answered without loading the weights."""
        if self._engine is not None:
            return self._engine.on_gpu
        if self._choose_backend() == "onnx":
            return onnx_backend.providers()[0] == "CUDAExecutionProvider"
        import torch

        return (self._device_name or "cuda").startswith("cuda") and torch.cuda.is_available()

    def prefetch_text(self, query: str | None = None) -> None:
        """Start loading the text tower in the background when an ONNX export is ready (else nothing:
        the first text embedding loads the model as usual); a routed model's, the one ``query`` takes."""
        if self._engine is None and self._choose_backend() == "onnx":
            export = self._at_precision(self._existing_export(), build_missing=False)
            if export is not None:
                export.prefetch_text(query)

    def runs_on_onnx(self) -> bool:
        """Whether this model will run on ONNX Runtime; answered without loading it."""
        if self._engine is not None:
            return self._engine.name == "onnx"
        return self._choose_backend() == "onnx"

    def suggest_batch_size(self, fallback: int) -> int:
        """A batch size for indexing: ``fallback`` on a CPU; on a GPU, as many images as half of the
        free GPU memory holds, measured with a probe batch (torch), or 128 (ONNX Runtime on CUDA)."""
        if not self.uses_gpu():
            return fallback
        engine = self._state_engine()
        if isinstance(engine, _OnnxEngine):
            return 128
        import torch

        probe = 8
        height, width = self.preprocess_config.size
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        engine.embed_pixels(np.zeros((probe, 3, height, width), dtype=np.float32))
        per_image = max(1, (torch.cuda.max_memory_allocated() - base) // probe)
        free, _total = torch.cuda.mem_get_info()
        return choose_batch_size(free, per_image)

    def set_threads(self, threads: int) -> None:
        """CPU threads for inference, set before the model loads (the indexer's core split)."""
        if self._engine is None:
            self._threads = threads
            if isinstance(self._export, onnx_backend.OnnxTowers):
                self._export.threads = threads  # its sessions start on first use

    # --- loaded state -------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._meta()[0]

    @property
    def visual_dim(self) -> int:
        """Size of the purely visual vector :meth:`embed_pixels_pair` returns besides the joint one; 0
        when the model has none richer than its joint image embedding (CLIP, SigLIP: that serves both).
        Answered without loading the weights (a Ray driver never loads them)."""
        if self._engine is not None:
            return self._meta()[4]
        export = self._existing_export()
        if export is not None:
            return export.manifest.visual_dim
        return _visual_dim_of_config(self._resolved.location, is_default=self._resolved.is_default)

    @property
    def logit_scale(self) -> float:
        """The learned log scale: logit = exp(logit_scale) * cosine (+ logit_bias)."""
        return self._meta()[1]

    @property
    def logit_bias(self) -> float | None:
        return self._meta()[2]

    @property
    def is_sigmoid(self) -> bool:
        return self._meta()[3]

    @property
    def device(self) -> torch.device:
        return self._torch_state().device

    @property
    def is_loaded(self) -> bool:
        return self._engine is not None

    def load(self) -> None:
        """Load weights and tokenizer (idempotent, thread-safe)."""
        self._state_engine()

    def _meta(self) -> tuple[int, float, float | None, bool, int]:
        engine = self._state_engine()
        if isinstance(engine, _OnnxEngine):
            m = engine.towers.manifest
            return m.dim, m.logit_scale, m.logit_bias, m.is_sigmoid, m.visual_dim
        s = engine.state
        return s.dim, s.logit_scale, s.logit_bias, s.is_sigmoid, s.visual_dim

    def _state_engine(self) -> _TorchEngine | _OnnxEngine:
        engine = self._engine
        if engine is not None:
            return engine
        with self._lock:
            if self._engine is None:
                self._engine = self._open()
            return self._engine

    def _open(self) -> _TorchEngine | _OnnxEngine:
        onnx = self._choose_backend() == "onnx"
        if onnx:
            towers = self._at_precision(self._existing_export() or self._export_now())
            if towers is not None:
                return _OnnxEngine(towers)
        if self.precision != "fp32":
            why = f"which cannot run {self.model_id}" if onnx else "not the torch backend asked for"
            raise ModelError(f"{self.precision} precision needs the ONNX backend, {why}")
        return _TorchEngine(self._torch_state())

    def _at_precision(
        self, towers: onnx_backend.OnnxTowers | None, *, build_missing: bool = True
    ) -> onnx_backend.OnnxTowers | None:
        """``towers`` themselves (fp32), or their int8 quantisation, made on first use."""
        if towers is None or self.precision == "fp32":
            return towers
        from indexer.core.models import quantize

        return quantize.int8_towers(towers, build_missing=build_missing)

    def _choose_backend(self) -> str:
        """``onnx`` or ``torch``, decided once (and its warning said once) per encoder."""
        if self._chosen is None:
            self._chosen = self._decide_backend()
        return self._chosen

    def _decide_backend(self) -> str:
        if self._backend == "torch" or not onnx_backend.available():
            if self._backend == "onnx":
                log.warning("ONNX Runtime is not installed; using torch for %s", self.model_id)
            return "torch"
        if self._backend == "onnx":
            return "onnx"
        if self._device_name is not None:  # only "cpu" is ONNX's; torch checks and runs the others
            return "onnx" if self._device_name == "cpu" else "torch"
        if _torch_gpu_present() and onnx_backend.providers()[0] != "CUDAExecutionProvider":
            return "torch"  # a GPU only PyTorch can use (onnxruntime-gpu not installed)
        return "onnx"

    def _export_key(self) -> str | None:
        """The fingerprint exports are keyed by; None when the model's files are not there yet."""
        location = self._resolved.location
        if self._resolved.is_default:
            return local_fingerprint(location) if is_current(Path(location)) else None
        if os.path.isdir(location):
            return self.fingerprint
        return "hub-" + local_fingerprint_of_text(location)

    def _existing_export(self) -> onnx_backend.OnnxTowers | None:
        if self._export is False:
            key = self._export_key() if onnx_backend.available() and self._backend != "torch" else None
            self._export = (
                None if key is None else onnx_backend.load(self._resolved.location, key, self._threads)
            )
        return self._export if isinstance(self._export, onnx_backend.OnnxTowers) else None

    def _export_now(self) -> onnx_backend.OnnxTowers | None:
        """Export the towers (loads the model with torch once); None, with a warning, on failure."""
        state = self._torch_state()
        key = self._export_key()
        if key is None:
            return None
        source = onnx_backend.TorchModel(
            model=state.model,
            tokenizer=state.tokenizer,
            model_id=self.model_id,
            dim=state.dim,
            logit_scale=state.logit_scale,
            logit_bias=state.logit_bias,
            is_sigmoid=state.is_sigmoid,
            max_length=state.max_length,
            preprocess=self.preprocess_config,
            visual_dim=state.visual_dim,
            english=None if state.english_location is None else load_english_route(state.english_location),
        )
        try:
            towers = onnx_backend.export(source, self._resolved.location, key, self._threads)
        except Exception as exc:  # an exporter or tokenizer limitation: torch still serves this model
            log.warning("no ONNX export of %s (%s); using torch", self.model_id, _first_line(exc))
            return None
        finally:
            self._loaded = None  # tracing may have changed the torch model: never use it again
        self._export = towers
        return towers

    def _torch_state(self) -> _Loaded:
        loaded = self._loaded
        if loaded is None:
            loaded = self._loaded = self._load()
        return loaded

    def _load(self) -> _Loaded:
        import torch

        if self._threads is not None:
            torch.set_num_threads(self._threads)
        if self._resolved.is_default:
            from indexer.core.models.default_model import ensure_default_model

            ensure_default_model(self._resolved.location)
        device = _pick_device(self._device_name)
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        try:
            model, tokenizer = _load_pretrained(self._resolved.location)
        except ModelError:
            if not self._resolved.is_default:
                raise
            # the default model is derived data: a damaged build (a truncated file) is built again
            from indexer.core.models.default_model import rebuild_default_model

            log.warning("the default model in %s cannot be loaded; building it again", self.location)
            rebuild_default_model(self._resolved.location)
            model, tokenizer = _load_pretrained(self._resolved.location)
        model = model.to(device=device, dtype=dtype).eval()
        config = model.config
        dim = int(getattr(config, "projection_dim", 0) or _probe_dim(model, config))
        is_sigmoid = config.model_type in SIGMOID_MODEL_TYPES
        bias = getattr(model, "logit_bias", None)
        state = _Loaded(
            model=model,
            tokenizer=tokenizer,
            device=device,
            dtype=dtype,
            dim=dim,
            logit_scale=float(model.logit_scale.detach().float().reshape(-1)[0]),
            logit_bias=float(bias.detach().float().reshape(-1)[0]) if bias is not None else None,
            is_sigmoid=is_sigmoid,
            max_length=_max_text_length(tokenizer, config, is_sigmoid),
            patch_size=self.preprocess_config.patch_size,
            visual_dim=_visual_dim(model),
            english_location=self._resolved.location if has_english_route(self._resolved.location) else None,
        )
        log.info("loaded %s on %s (%s, dim %d)", self.model_id, device, dtype, dim)
        return state

    # --- embedding ------------------------------------------------------------------------
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        return self.embed_images_pair(images)[0]

    def embed_images_pair(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray | None]:
        """Joint (n, dim) and, when the model has one, visual (n, visual_dim) vectors, L2-normalised."""
        cfg = self.preprocess_config
        return self._batched(
            len(images), lambda a, b: np.stack([preprocess_image(image, cfg) for image in images[a:b]])
        )

    def embed_pixels(self, pixel_values: np.ndarray) -> np.ndarray:
        """(n, 3, H, W) already preprocessed -> (n, dim) float32, L2-normalised."""
        return self.embed_pixels_pair(pixel_values)[0]

    def embed_pixels_pair(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(n, 3, H, W) already preprocessed -> joint (n, dim) and visual (n, visual_dim) or None."""
        pixel_values = np.asarray(pixel_values)
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ModelError(f"expected pixel values of shape (n, 3, H, W), got {pixel_values.shape}")
        return self._batched(len(pixel_values), lambda a, b: pixel_values[a:b])

    def _batched(
        self, n: int, pixels: Callable[[int, int], np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        engine = self._state_engine()
        visual_dim = self.visual_dim
        joint = np.empty((n, self.dim), dtype=np.float32)
        visual = np.empty((n, visual_dim), dtype=np.float32) if visual_dim else None
        for start in range(0, n, self.batch_size):
            stop = min(n, start + self.batch_size)
            joint[start:stop], batch_visual = engine.embed_pixels(pixels(start, stop))
            if visual is not None and batch_visual is not None:
                visual[start:stop] = batch_visual
        return joint, visual

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        if isinstance(texts, str):
            raise ModelError("embed_texts takes a list of texts, not one string")
        engine = self._state_engine()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            out[start : start + len(batch)] = engine.embed_texts(batch)
        return out

    def __repr__(self) -> str:
        return f"DualEncoder({self.model_id!r}, loaded={self.is_loaded})"


def choose_batch_size(
    free_bytes: int, per_image_bytes: int, *, share: float = 0.5, low: int = 8, high: int = 1024
) -> int:
    """Images per batch that fit ``share`` of the free GPU memory: a multiple of 8 in [low, high]."""
    fits = int(free_bytes * share) // max(1, per_image_bytes)
    return max(low, min(high, fits // 8 * 8))


def _torch_gpu_present() -> bool:
    """An NVIDIA GPU PyTorch can use (torch is imported only where a GPU device node exists)."""
    if not os.path.exists("/dev/nvidiactl"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def local_fingerprint_of_text(text: str) -> str:
    import hashlib

    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def load_encoder(model: str | os.PathLike[str] | None = None, **kwargs: Any) -> DualEncoder:
    """A loaded encoder; ``None``/``"default"`` is the offline default model (built on first use)."""
    encoder = DualEncoder("default" if model is None else model, **kwargs)
    encoder.load()
    return encoder


def _pick_device(name: str | None) -> torch.device:
    """CUDA when available (unless told otherwise), else CPU; a bad request is a ModelError."""
    import torch

    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as exc:
        raise ModelError(f"unknown device {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was asked for, but no CUDA GPU is available")
    return device


def _load_pretrained(location: str) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    import indexer.core.models.towers  # noqa: F401  (registers the default model's tower classes)

    hf_logging.disable_progress_bar()
    try:
        model, info = AutoModel.from_pretrained(location, output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(location)
    except Exception as exc:  # missing, truncated or foreign files raise many different types
        raise ModelError(f"cannot load model {location!r}: {_first_line(exc)}") from exc
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise ModelError(f"model {location!r} ({type(model).__name__}) is not an image-text dual encoder")
    if info.get("missing_keys"):
        log.warning("model %s: weights newly initialised: %s", location, sorted(info["missing_keys"]))
    return model, tokenizer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _max_text_length(tokenizer: Any, config: Any, is_sigmoid: bool) -> int:
    limits = [int(tokenizer.model_max_length)] if tokenizer.model_max_length < 1_000_000 else []
    text_config = getattr(config, "text_config", None)
    positions = getattr(text_config, "max_position_embeddings", None)
    if positions:
        limits.append(int(positions))
    if not limits:
        return 64 if is_sigmoid else 77
    return min(limits)


def _probe_dim(model: Any, config: Any) -> int:
    for name in ("text_projection", "visual_projection"):
        layer = getattr(model, name, None)
        if layer is not None and hasattr(layer, "out_features"):
            return int(layer.out_features)
    text_config = getattr(config, "text_config", None)
    if text_config is not None and getattr(text_config, "hidden_size", None):
        return int(text_config.hidden_size)
    raise ModelError("cannot tell the embedding size of this model")


def _visual_dim_of_config(location: str, *, is_default: bool) -> int:
    """The size of a model's visual vector from its configuration alone (no weights loaded)."""
    if is_default:
        return FEATURE_DIM
    try:
        if os.path.isdir(location):
            with open(os.path.join(location, "config.json"), encoding="utf-8") as fh:
                config = json.load(fh)
            vision = (config.get("vision_config") or {}).get("model_type")
        else:
            from transformers import AutoConfig

            vision = getattr(
                getattr(AutoConfig.from_pretrained(location), "vision_config", None), "model_type", None
            )
    except (OSError, ValueError):
        return 0  # loading the model reports the problem; until then: no visual vectors
    return visual_dim_of(vision)


def _visual_dim(model: Any) -> int:
    """The size of a loaded model's visual vector (:func:`visual_dim_of` its vision tower's type)."""
    vision = getattr(getattr(model, "vision_model", None), "config", None)
    return visual_dim_of(getattr(vision, "model_type", None))


def _pooled(output: Any) -> torch.Tensor:
    """transformers 5 returns a model output whose pooler_output is the projected embedding."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        raise ModelError("the model returned no pooled embedding")
    return pooled


def _normalise(features: torch.Tensor) -> np.ndarray:
    """The model boundary: every vector dualens stores or compares is normalised here, once."""
    return l2_normalise(features.float().cpu().numpy())
