"""Reading a query image from a file, with the path rules of the search API.

By default the search API only reads files inside the collection's indexed roots (the UI and any
server use it that way); the CLI opens its Searcher with ``allow_external_files=True`` because a
user on their own terminal may search with any photo they can read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from indexer.core.errors import NotFoundError, UnsafePathError
from indexer.core.imaging import open_image
from indexer.core.text import printable

MAX_QUERY_PIXELS = 100_000_000


def inside_roots(path: Path, roots: Sequence[Path]) -> bool:
    """True when the real path (symlinks resolved) lies below one of the real roots."""
    real = path.resolve()
    return any(real.is_relative_to(root.resolve()) for root in roots)


def check_readable(path: str | os.PathLike[str], roots: Sequence[Path], allow_external: bool) -> Path:
    """The absolute path of a query image file; UnsafePathError outside the roots when not allowed."""
    p = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    shown = printable(str(p))
    try:
        if not allow_external and not inside_roots(p, roots):
            raise UnsafePathError(
                f"{shown} is outside the indexed folders; only photos inside them can be read"
            )
        if not p.is_file():
            raise NotFoundError(f"the query image {shown} does not exist or is not a file")
    except OSError as exc:  # a name too long, a loop of symlinks
        raise NotFoundError(f"the query image {shown} cannot be used ({exc.strerror or exc})") from exc
    return p


def load_image(path: Path, max_pixels: int = MAX_QUERY_PIXELS) -> Image.Image:
    """Decode a query image file (upright, RGB); ImageError if unreadable."""
    return open_image(path, name=f"the query image {printable(str(path))}", max_pixels=max_pixels).image
