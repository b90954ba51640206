"""On-disk cache of per-image vectors, keyed by (model fingerprint, image content).

Evaluation embeds the same images again and again (one model, several prompt sets; before and
after training); the cache makes the second run cost only the text side. One ``.npz`` file per
model fingerprint under ``<data>/cache/eval/``; written atomically so an interrupted run leaves
the previous cache intact.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

T = TypeVar("T")

log = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json")


def model_fingerprint(model_id: str, directory: Path | None = None) -> str:
    """A stable hash of the model id and the size/mtime of the files of its local directory.

    ``directory`` defaults to ``model_id`` itself when that is a directory; retraining or rebuilding
    a model in place therefore yields a new fingerprint and a cold cache.
    """
    h = hashlib.sha256(model_id.encode())
    directory = directory if directory is not None else Path(model_id)
    if directory.is_dir():
        for f in sorted(directory.iterdir()):
            if f.is_file() and f.suffix in _WEIGHT_SUFFIXES and not f.name.startswith("."):
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


# Bumped when the pixels a model sees change (decoder, orientation, preprocessing): old entries miss.
PIXELS_VERSION = "imaging-1"


def image_key(path: Path) -> str:
    """The photo's bytes, not its path or mtime: a data set that is copied, moved or touched keeps
    its cached vectors (reading a thousand photos to hash them takes well under a second)."""
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"{PIXELS_VERSION}|{path.stat().st_size}|{digest.hexdigest()}"


def text_key(text: str) -> str:
    return text


class VectorCache:
    """Vectors (of images or texts) under one model; ``get_or_compute`` fills the gaps in one batch."""

    def __init__(self, directory: Path | None, fingerprint: str, namespace: str = "image") -> None:
        self.file = None if directory is None else Path(directory) / f"{namespace}-{fingerprint}.npz"
        self._vectors: dict[str, np.ndarray] = {}
        self._dirty = False
        if self.file is not None and self.file.is_file():
            self._load()

    def _load(self) -> None:
        assert self.file is not None
        try:
            with np.load(self.file, allow_pickle=False) as data:
                keys, vectors = data["keys"], data["vectors"]
            self._vectors = {str(k): v for k, v in zip(keys, vectors, strict=True)}
        except (OSError, ValueError, KeyError) as exc:  # damaged cache: start over, it is only a cache
            log.warning("ignoring unreadable embedding cache %s: %s", self.file, exc)
            self._vectors = {}

    def __len__(self) -> int:
        return len(self._vectors)

    def get_or_compute(
        self, items: Sequence[T], key: Callable[[T], str], compute: Callable[[list[T]], np.ndarray]
    ) -> np.ndarray:
        """Vectors for ``items`` in order; ``compute`` is called once on the uncached ones."""
        keys = [key(item) for item in items]
        missing = [i for i, k in enumerate(keys) if k not in self._vectors]
        if missing:
            fresh = np.asarray(compute([items[i] for i in missing]), dtype=np.float32)
            for i, vec in zip(missing, fresh, strict=True):
                self._vectors[keys[i]] = vec
            self._dirty = True
            self.save()
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._vectors[k] for k in keys]).astype(np.float32, copy=False)

    def save(self) -> None:
        if self.file is None or not self._dirty:
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._vectors), dtype=str)
        vectors = np.stack(list(self._vectors.values())).astype(np.float32)
        fd, tmp = tempfile.mkstemp(dir=self.file.parent, suffix=".npz.tmp")
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates owner-only files
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, keys=keys, vectors=vectors)
            os.replace(tmp, self.file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._dirty = False
