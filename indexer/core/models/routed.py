"""v5's English route: v4.2's text side mapped into v5's joint space, and the routing of queries.

A v5 model directory is a plain ``VisionTextDualEncoderModel`` whose text tower is USE Multilingual
(its ``get_text_features`` serves every language: the Hugging Face form does no routing), plus the
folder ``english/``: v4.2's text tower (all-MiniLM-L6-v2 with v4.2's trained layers, a mean-pooling
BERT), its tokenizer and ``projection.safetensors``, the (dim, 384) map ``E @ W_text_v4.2`` into the
same space (``E``: the shipped ``english`` head, indexer/quality/train_v5_en.py). dualens' encoder
routes each query (:mod:`indexer.core.models.language`): confidently English ones through
``english/``, all others through USE; image vectors do not depend on the route. Each route loads on
its first query, so an English query never loads USE and a German one never loads MiniLM.

Invariant: both routes end in L2-normalised vectors of the same space (the image vectors'); the
route of a text is a function of the text alone, the same on torch and ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.core.errors import ModelError
from indexer.core.models.default_spec import ENGLISH_DIR
from indexer.core.models.language import english_mask, pack
from indexer.core.vectors import l2_normalise

PROJECTION_FILE = "projection.safetensors"
ENGLISH_GRAPH = "text_en.onnx"
ENGLISH_TOKENIZER = "tokenizer_en.json"
LANGID_FILE = "langid.npz"  # the language identifier, packed to load in milliseconds (language.pack)
TEXT_INPUTS = ("input_ids", "attention_mask")

Embed = Callable[[list[str]], np.ndarray]


def route_texts(texts: Sequence[str], dim: int, english: Embed, other: Embed) -> np.ndarray:
    """(n, dim) float32: each text embedded by its route (order kept); a route with no text is never
    called (nor loaded)."""
    mask = english_mask(texts)
    out = np.empty((len(texts), dim), dtype=np.float32)
    for route, chosen in ((english, mask), (other, ~mask)):
        if chosen.any():
            out[chosen] = route([t for t, keep in zip(texts, chosen, strict=True) if keep])
    return out


def has_english_route(location: str | Path) -> bool:
    return (Path(location) / ENGLISH_DIR / PROJECTION_FILE).is_file()


@dataclass
class EnglishRoute:
    """The English route run by torch."""

    model: Any  # MeanPooledBertModel: v4.2's text tower
    tokenizer: Any
    projection: Any  # torch (dim, 384)
    max_length: int

    @property
    def dim(self) -> int:
        return int(self.projection.shape[0])

    def features(self, input_ids: Any, attention_mask: Any) -> Any:
        """Unnormalised (batch, dim) text features (what the ONNX graph normalises)."""
        pooled = self.model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return pooled @ self.projection.T

    def tokens(self, texts: Sequence[str]) -> Any:
        return self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        tokens = self.tokens(texts)
        with torch.inference_mode():
            features = self.features(tokens["input_ids"], tokens["attention_mask"])
        return l2_normalise(features.float().cpu().numpy())

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        save_file({"weight": self.projection.contiguous()}, str(folder / PROJECTION_FILE))


def load_english_route(location: str | Path) -> EnglishRoute:
    """The English route of a v5 model directory (torch); ModelError when it cannot be read."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    import indexer.core.models.towers  # noqa: F401  (registers the mean-pooling BERT)

    folder = Path(location) / ENGLISH_DIR
    try:
        model = AutoModel.from_pretrained(folder).float().eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        projection = load_file(str(folder / PROJECTION_FILE))["weight"].float()
    except Exception as exc:  # missing or damaged files raise many types
        raise ModelError(f"cannot load the English text route in {folder}: {exc}") from exc
    return EnglishRoute(model, tokenizer, projection, int(tokenizer.model_max_length))


# --------------------------------------------------------------------------------------------- ONNX


def export_english(route: EnglishRoute, folder: Path, opset: int) -> dict[str, Any]:
    """Write the route's graph (tokens -> L2-normalised vector) and tokenizer into an export folder;
    the manifest's ``english`` entry."""
    import warnings

    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = route.model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(route.features(input_ids, attention_mask).float(), dim=-1)

    tokens = route.tokens(["a dog on a beach at sunset", "a photo of a cat"])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings; the result is verified instead
        torch.onnx.export(
            Tower(),
            (tokens["input_ids"], tokens["attention_mask"]),
            str(folder / ENGLISH_GRAPH),
            input_names=list(TEXT_INPUTS),
            output_names=["embedding"],
            dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in TEXT_INPUTS}, "embedding": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    route.tokenizer.backend_tokenizer.save(str(folder / ENGLISH_TOKENIZER))
    pack(folder / LANGID_FILE)
    pad_id = route.tokenizer.pad_token_id
    return {"max_length": route.max_length, "pad_id": int(pad_id or 0)}


class OnnxEnglish:
    """The English route of an export, run by ONNX Runtime: its session and tokenizer start on first use."""

    def __init__(self, folder: Path, entry: dict[str, Any], session: Callable[[str], Any]) -> None:
        self.folder, self.entry, self._new_session = folder, entry, session
        self._session: Any = None
        self._tokenizer: Any = None

    def ensure(self) -> None:
        """Load the tokenizer and session (callers hold the towers' lock)."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self.folder / ENGLISH_TOKENIZER))
            tokenizer.enable_truncation(max_length=int(self.entry["max_length"]))
            tokenizer.enable_padding(pad_id=int(self.entry["pad_id"]))
            self._tokenizer = tokenizer
        if self._session is None:
            self._session = self._new_session(ENGLISH_GRAPH)

    def tokens(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        encodings = self._tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._session.run(None, self.tokens(texts))[0]


def verify_english(
    reference: np.ndarray, texts: Sequence[str], route: EnglishRoute, onnx: OnnxEnglish
) -> float:
    """The smallest cosine between the torch route's ``reference`` vectors of ``texts`` and the
    export's (in a batch, and one at a time); ModelError when the tokenizers disagree."""
    onnx.ensure()
    ours = onnx.tokens(texts)["input_ids"]
    if not np.array_equal(ours, route.tokens(texts)["input_ids"].numpy()):
        raise ModelError("the English route's stand-alone tokenizer does not reproduce its token ids")
    batch = onnx.embed(texts)
    single = np.concatenate([onnx.embed([t]) for t in texts[:2]])
    cosines = np.concatenate([(reference * batch).sum(axis=1), (reference[:2] * single).sum(axis=1)])
    return float(cosines.min())
