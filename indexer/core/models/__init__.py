"""The model layer: any Hugging Face image-text dual encoder behind one small interface.

Importing this package is cheap (no torch, no transformers), so CLI commands start fast; they
load with the weights. The offline default model's two custom tower classes are registered with
the transformers Auto classes by ``register_towers()``, which every dualens path that loads or
builds a model calls first (and which importing ``indexer.core.models.towers`` does too), so a
saved default model always reloads with its own weights.
"""

from __future__ import annotations

from indexer.core.models.default_spec import DEFAULT_MODEL_ID
from indexer.core.models.encoder import DualEncoder, load_encoder
from indexer.core.models.preprocess import PreprocessConfig, preprocess_image


def register_towers() -> None:
    """Register the default model's custom towers with AutoConfig/AutoModel (idempotent)."""
    from indexer.core.models.towers import register_towers as register

    register()


__all__ = [
    "DEFAULT_MODEL_ID",
    "DualEncoder",
    "PreprocessConfig",
    "load_encoder",
    "preprocess_image",
    "register_towers",
]
