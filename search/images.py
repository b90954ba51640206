"""Reading a query image from a file, with the path rules of the search API.

By default the search API only reads files inside the collection's indexed roots (the UI and any
server use it that way); the CLI opens its Searcher with ``allow_external_files=True`` because a
user on their own terminal may search with any photo they can read.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

from indexer.core.errors import ImageError, NotFoundError, UnsafePathError

MAX_QUERY_PIXELS = 100_000_000


def inside_roots(path: Path, roots: Sequence[Path]) -> bool:
    """True when the real path (symlinks resolved) lies below one of the real roots."""
    real = path.resolve()
    return any(real.is_relative_to(root.resolve()) for root in roots)


def check_readable(path: str | os.PathLike[str], roots: Sequence[Path], allow_external: bool) -> Path:
    """The absolute path of a query image file; UnsafePathError outside the roots when not allowed."""
    p = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    if not allow_external and not inside_roots(p, roots):
        raise UnsafePathError(f"{p} is outside the indexed folders; only photos inside them can be read")
    if not p.is_file():
        raise NotFoundError(f"the query image {p} does not exist or is not a file")
    return p


def load_image(path: Path, max_pixels: int = MAX_QUERY_PIXELS) -> Image.Image:
    """Decode a query image file; ImageError if unreadable (see :func:`decode_image`)."""
    return decode_image(path, name=f"the query image {path}", max_pixels=max_pixels)


def decode_image(source: str | os.PathLike[str] | IO[bytes], *, name: str, max_pixels: int) -> Image.Image:
    """First frame, EXIF orientation applied, RGB. The pixel count is checked from the header before
    any pixel is decoded; every failure is an :class:`ImageError` whose message starts with ``name``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if width <= 0 or height <= 0 or width * height > max_pixels:
                    raise ImageError(
                        f"{name} is too large ({width}x{height} pixels; "
                        f"at most {max_pixels / 1e6:.0f} megapixels)"
                    )
                image.seek(0)  # first frame of an animation
                image.load()
                return to_rgb(ImageOps.exif_transpose(image))
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name} is not an image dualens can read") from exc
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageError(f"{name} is damaged or unreadable ({exc})") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB on a white background for images with transparency; 16-bit greyscale scaled to 8 bits."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")
