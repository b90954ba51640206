"""Turn a ``--model`` value into where to load it from and the id a collection stores."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from indexer.core import settings
from indexer.core.errors import NotFoundError
from indexer.core.models.default_spec import DEFAULT_ID_PREFIX, DEFAULT_MODEL_ID, DEFAULT_PREPROCESS
from indexer.core.models.preprocess import PreprocessConfig

DEFAULT_NAMES = frozenset({"default", DEFAULT_MODEL_ID})
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass(frozen=True)
class ResolvedModel:
    location: str  # what from_pretrained gets: a local directory or a hub id
    model_id: str  # stable id stored with a collection
    is_default: bool
    preprocess: PreprocessConfig | None = None  # known without reading any file (the default model)


def resolve_model(model: str | os.PathLike[str] | None = None) -> ResolvedModel:
    """``None``/``"default"`` -> the offline default; an existing directory -> its absolute path;
    anything shaped like ``org/name`` -> a hub id. A path that does not exist -> NotFoundError.

    The id of an older version of the built-in default (``dualens-default-v1``) also resolves to the
    current default, never to a hub lookup: its collections are re-embedded by ``--reindex``."""
    if model is None or str(model) in DEFAULT_NAMES or str(model).startswith(DEFAULT_ID_PREFIX):
        location = str(settings.default_model_dir())
        return ResolvedModel(location, DEFAULT_MODEL_ID, True, DEFAULT_PREPROCESS)
    raw = os.fspath(model)
    path = Path(raw).expanduser()
    if path.exists():
        if not path.is_dir():
            raise NotFoundError(f"model path {raw!r} is a file; give a model directory or a hub id")
        resolved = str(path.resolve())
        return ResolvedModel(resolved, resolved, False)
    if _looks_like_path(raw) or not _HUB_ID.match(raw):
        raise NotFoundError(f"model directory {raw!r} does not exist")
    return ResolvedModel(raw, raw, False)


def _looks_like_path(raw: str) -> bool:
    return raw.startswith((".", "/", "~")) or raw.count("/") > 1 or (os.sep != "/" and os.sep in raw)
