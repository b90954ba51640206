"""Turn a ``--model`` value into where to load it from and the id a collection stores."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from indexer.core import settings
from indexer.core.errors import NotFoundError
from indexer.core.models.default_spec import (
    DEFAULT_ID_PREFIX,
    DEFAULT_MODEL_ID,
    DEFAULT_PREPROCESS,
    V5_DIR,
    V5_MODEL_ID,
)
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
    current default, never to a hub lookup: its collections are re-embedded by ``--reindex``.
    ``dualens-default-v5`` (multilingual) is built next to the default's folder, in ``default-v5``."""
    if str(model) == V5_MODEL_ID:
        location = str(settings.default_model_dir().with_name(V5_DIR))
        return ResolvedModel(location, V5_MODEL_ID, True, DEFAULT_PREPROCESS)
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


FINGERPRINT_CACHE = ".dualens-fingerprint.json"


def _stamp(root: Path, path: Path) -> list[str | int]:
    """What changes whenever ``path``'s bytes may have changed (the fingerprint cache's key)."""
    st = path.stat()
    return [str(path.relative_to(root)), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def local_fingerprint(directory: str | os.PathLike[str]) -> str:
    """A content hash of a local model directory: every file's name, size and bytes.

    Retraining or rebuilding a model in place changes it; copying the model elsewhere does not. The
    result is remembered next to the files (when the folder is writable) against each file's size,
    modification time, change time and inode, so a large model is hashed once, not at every start;
    a file rewritten with its old size and mtime put back (``touch -r``) still has a new change
    time (no user can set it), and a file replaced by a rename a new inode.
    """
    root = Path(directory)
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    stamp = [_stamp(root, p) for p in files]
    cache = root / FINGERPRINT_CACHE
    try:
        remembered = json.loads(cache.read_text(encoding="utf-8"))
        if remembered.get("stamp") == stamp:
            return str(remembered["fingerprint"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    digest = hashlib.blake2b(digest_size=16)
    for p in files:
        digest.update(f"{p.relative_to(root)}\0{p.stat().st_size}\0".encode())
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    fingerprint = digest.hexdigest()
    with contextlib.suppress(OSError):  # a read-only model folder: hash again next time
        cache.write_text(json.dumps({"stamp": stamp, "fingerprint": fingerprint}), encoding="utf-8")
    return fingerprint
