"""The model layer: any Hugging Face image-text dual encoder behind one small interface.

Importing this package registers the offline default model's custom towers with the
transformers Auto classes, so a saved default model always reloads with its own weights.
"""

from __future__ import annotations

from indexer.core.models import towers as _towers  # noqa: F401  (registers the custom towers)
from indexer.core.models.default_spec import DEFAULT_MODEL_ID
from indexer.core.models.encoder import DualEncoder, load_encoder
from indexer.core.models.preprocess import PreprocessConfig, preprocess_image

__all__ = ["DEFAULT_MODEL_ID", "DualEncoder", "PreprocessConfig", "load_encoder", "preprocess_image"]
