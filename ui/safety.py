"""What the UI may read: only files inside the indexed roots, and uploads within limits.

The UI never takes a path from a widget or a query parameter. It only handles photo ids, looks
the path up in the collection itself, and still checks that path against the indexed roots
(symlinks resolved) before opening anything, so a tampered database row or a symlink pointing
out of a root cannot make it read other files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from indexer.core.errors import ImageError, UnsafePathError
from indexer.core.imaging import open_image

_PHOTO_ID = re.compile(r"[0-9]{1,18}")
_REMEMBERED_PATHS = 100_000


class PathGuard:
    """Resolves a photo path and refuses it unless it lies inside one of the roots."""

    def __init__(self, roots: Iterable[str | os.PathLike[str]]) -> None:
        resolved = []
        for root in roots:
            try:
                resolved.append(Path(root).resolve(strict=True))
            except (OSError, RuntimeError):
                continue  # a root that vanished protects nothing and allows nothing
        self.roots: tuple[Path, ...] = tuple(resolved)
        # inside_roots answers per path, remembered for this guard's life: it only decides which
        # hits a page lists (a new guard comes with every new index); reading a file goes through
        # resolve(), which never uses it
        self._inside: dict[str, bool] = {}

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """The real path of an existing file inside a root; :class:`UnsafePathError` otherwise."""
        raw = os.fspath(path)
        if not raw or "\x00" in raw:
            raise UnsafePathError("refusing an empty or malformed path")
        candidate = Path(raw)
        if not candidate.is_absolute() or ".." in candidate.parts:
            raise UnsafePathError(f"refusing a relative path: {raw!r}")
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # missing file, symlink loop
            raise UnsafePathError(f"cannot resolve {raw!r}: {exc.__class__.__name__}") from exc
        if not any(real.is_relative_to(root) for root in self.roots):
            raise UnsafePathError(f"{raw!r} is outside the indexed folders")
        if not real.is_file():
            raise UnsafePathError(f"{raw!r} is not a regular file")
        return real

    def inside_roots(self, path: str | os.PathLike[str]) -> bool:
        """Whether a path would lie inside a root once resolved; it need not exist (yet)."""
        raw = os.fspath(path)
        known = self._inside.get(raw)
        if known is None:
            if len(self._inside) >= _REMEMBERED_PATHS:
                self._inside.clear()
            known = self._inside[raw] = self._resolves_inside(raw)
        return known

    def _resolves_inside(self, raw: str) -> bool:
        if not raw or "\x00" in raw:
            return False
        candidate = Path(raw)
        if not candidate.is_absolute() or ".." in candidate.parts:
            return False
        try:
            real = candidate.resolve(strict=False)
        except (OSError, RuntimeError):
            return False
        return any(real.is_relative_to(root) for root in self.roots)


def parse_photo_id(raw: object) -> int | None:
    """A photo id from an untrusted string (query parameter, widget): digits only, else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw >= 0 else None
    if isinstance(raw, str) and _PHOTO_ID.fullmatch(raw.strip()):
        return int(raw.strip())
    return None


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def decode_upload(data: bytes, *, max_bytes: int, max_pixels: int) -> Image.Image:
    """Decode an uploaded photo in memory, checking size before decoding any pixel.

    Returns an RGB image with its EXIF orientation applied. Every failure is an
    :class:`ImageError` whose message can be shown to the user as is.
    """
    if not data:
        raise ImageError("The uploaded file is empty.")
    if len(data) > max_bytes:
        raise ImageError(f"The uploaded file is too large ({_mb(len(data))}; the limit is {_mb(max_bytes)}).")
    return open_image(data, name="The uploaded image", max_pixels=max_pixels).image
