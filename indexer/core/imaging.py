"""The one way dualens turns an image file into pixels, and the one list of image extensions.

    open -> first frame -> (JPEG draft / reduce when a small size will do) -> EXIF orientation -> RGB

Every reader goes through :func:`open_image`: the indexer's decode workers, query images, uploads,
thumbnails, evaluation and training. Evaluation therefore measures a model on exactly the pixels
the indexer embeds. Every failure is an :class:`~indexer.core.errors.ImageError` whose ``kind``
says what went wrong (the indexer records it per file) and whose message can be shown as is.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from indexer.core.errors import ImageError, ImageProblem
from indexer.core.exif import PhotoMeta, read_meta
from indexer.core.limits import DEFAULT_MAX_PIXELS, MAX_JPEG_SCAN_PIXELS
from indexer.core.raw import RAW_EXTENSIONS, open_raw, raw_available

# extension -> file_type stored in the database (and used by search filters)
BASE_EXTENSIONS: dict[str, str] = {
    ".jpg": "jpg",
    ".jpeg": "jpg",
    ".jpe": "jpg",
    ".png": "png",
    ".webp": "webp",
    ".gif": "gif",
    ".bmp": "bmp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".jp2": "jp2",  # JPEG 2000 (Pillow's OpenJPEG codec)
    ".j2k": "jp2",
    ".jpf": "jp2",
    ".pbm": "pnm",  # Netpbm
    ".pgm": "pnm",
    ".ppm": "pnm",
    ".pnm": "pnm",
}
HEIF_EXTENSIONS: dict[str, str] = {".heic": "heic", ".heif": "heic", ".avif": "avif"}

# EXIF orientation -> the transpose that shows the photo upright (as ImageOps.exif_transpose).
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

Source = str | os.PathLike[str] | bytes | IO[bytes]

# A progressive JPEG is decoded once per scan, each scan over every block of the image: encoders
# write about 10 scans, while a few hundred bytes per scan let a small file demand minutes of CPU (a
# decode bomb). The cost is bounded by scans x pixels (MAX_JPEG_SCAN_PIXELS) and, for tiny images,
# by the scan count (libjpeg-turbo's tools cap it too).
MAX_JPEG_SCANS = 200
MAX_JPEG_SEGMENTS = 10_000  # real files have a few dozen (two per scan at most): the walk stays short
_JPEG_SOI = b"\xff\xd8"
# a marker: 0xFF, then anything but a stuffed 0x00, a restart marker (RSTn lives inside entropy-coded
# data) or another 0xFF (a fill byte: the marker follows it). Searching for it skips a scan's data in
# one C call; the pattern has no repetition, so the search stays linear on any bytes.
_JPEG_MARKER = re.compile(rb"\xff([^\x00\xd0-\xd7\xff])")
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_NO_LENGTH = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})  # TEM, SOI, RSTn: no length field
_JPEG_SOS, _JPEG_EOI = 0xDA, 0xD9


def heif_available() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


_plugins_registered = False


def register_optional_plugins() -> None:
    """Let Pillow open HEIC/AVIF when the optional plugin is installed (idempotent)."""
    global _plugins_registered
    if _plugins_registered:
        return
    _plugins_registered = True
    try:
        import pillow_heif
    except ImportError:
        return
    pillow_heif.register_heif_opener()


def supported_extensions() -> dict[str, str]:
    """Image extensions this installation can decode (HEIC/AVIF with the optional plugins)."""
    exts = dict(BASE_EXTENSIONS)
    if raw_available():
        exts.update(RAW_EXTENSIONS)
    if heif_available():
        exts.update(HEIF_EXTENSIONS)
    elif features.check("avif"):
        exts[".avif"] = "avif"
    return exts


def file_type(name: str | os.PathLike[str]) -> str | None:
    """The stored file type of an image file name (``photo.JPEG`` -> ``jpg``), None if not an image."""
    return supported_extensions().get(os.path.splitext(os.fspath(name))[1].lower())


def is_image_name(name: str | os.PathLike[str]) -> bool:
    """Whether a name has an image extension, with or without the optional plugins installed."""
    suffix = os.path.splitext(os.fspath(name))[1].lower()
    return suffix in BASE_EXTENSIONS or suffix in HEIF_EXTENSIONS or suffix in RAW_EXTENSIONS


@dataclass(frozen=True)
class Picture:
    """A decoded image, upright and RGB; ``width``/``height`` are the full-size upright dimensions
    (``image`` may be smaller when a ``min_side`` let the decoder shrink it)."""

    image: Image.Image
    width: int
    height: int
    meta: PhotoMeta


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with one rule for every reader: transparency composited onto white, 16-bit and 32-bit
    greyscale scaled to 8 bits (Pillow's own convert() would clip them to white)."""
    if image.mode.startswith("I;16"):
        image = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8), "L")
    elif image.mode in ("I", "F"):
        arr = np.nan_to_num(np.asarray(image, dtype=np.float64))
        top = float(arr.max()) if arr.size else 0.0
        scale = 255.0 / top if top > 255.0 else 1.0
        image = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def open_image(
    source: Source,
    *,
    name: str = "the image",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | None = None,
) -> Picture:
    """Decode the first frame of an image, upright and RGB.

    The pixel count is checked from the header before any pixel is decoded. With ``min_side`` the
    decoder may shrink the image (JPEG DCT scaling, ``Image.reduce``) as long as both sides stay at
    least that large: the caller resizes further anyway. Raises :class:`ImageError` (message starts
    with ``name``), never anything else, for a bad file.
    """
    register_optional_plugins()
    raw, data = False, b""
    if isinstance(source, str | os.PathLike):
        raw = os.path.splitext(os.fspath(source))[1].lower() in RAW_EXTENSIONS
        source = read_file(Path(source), name)[0]
    if isinstance(source, bytes):
        if raw:
            return _finish(*open_raw(source, name, max_pixels), min_side)
        check_decode_cost(source, name)
        data, source = source, io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # EXIF and decompression-bomb warnings: checked here
            with Image.open(source) as image:
                return _decode(image, name, max_pixels, min_side)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:  # an upload of a RAW file has no name to go by
        if data and raw_available():
            try:
                return _finish(*open_raw(data, name, max_pixels), min_side)
            except ImageError:
                pass
        raise _image_error(exc, name) from exc
    except Exception as exc:  # any decoder error is a property of this file
        raise _image_error(exc, name) from exc


def read_file(
    path: Path, name: str = "the image", max_bytes: int | None = None
) -> tuple[bytes, os.stat_result]:
    """The bytes and the stat of one open regular file (no bytes when above ``max_bytes``).

    A FIFO, device or folder is refused at once: opening never blocks (O_NONBLOCK) and the type is
    checked on the opened descriptor, not on the path, so a swap after a scan changes nothing.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as exc:
        detail = "deleted before it could be read"
        raise ImageError(f"{name} does not exist", kind=ImageProblem.VANISHED, detail=detail) from exc
    except OSError as exc:
        raise _unreadable(name, exc) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            detail = "not a regular file"
            raise ImageError(f"{name} is {detail}", kind=ImageProblem.UNREADABLE, detail=detail)
        if max_bytes is not None and st.st_size > max_bytes:
            return b"", st
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(), st
    except OSError as exc:
        raise _unreadable(name, exc) from exc
    finally:
        os.close(fd)


def _unreadable(name: str, exc: OSError) -> ImageError:
    detail = exc.strerror or str(exc)
    return ImageError(f"{name} cannot be read ({detail})", kind=ImageProblem.UNREADABLE, detail=detail)


@dataclass(frozen=True)
class JpegScans:
    """What the first image of a JPEG file asks of the decoder: its scans and its frame size."""

    scans: int
    width: int
    height: int
    segments: int  # marker segments walked (stops early past MAX_JPEG_SEGMENTS)

    @property
    def pixel_passes(self) -> int:
        """Scans x pixels: what a decoder works through (each scan visits every block)."""
        return self.scans * self.width * self.height


def jpeg_scans(data: bytes) -> JpegScans | None:
    """The scans and frame size of the JPEG image ``data`` starts with (None: not a JPEG).

    Walks the marker segments by their lengths, skips each scan's entropy-coded data to the next
    marker and stops at the first EOI: a thumbnail inside an APP segment and whatever follows the
    image (the video of a motion photo, the second frame of an MPO) are not counted. Bytes that are
    no marker where one is due are skipped to the next marker, as libjpeg does.
    """
    if not data.startswith(_JPEG_SOI):
        return None
    scans = width = height = segments = 0
    pos, end = 2, len(data)
    while segments <= MAX_JPEG_SEGMENTS:
        found = _JPEG_MARKER.search(data, pos)
        if found is None:
            break
        marker, pos = found[1][0], found.end()
        segments += 1
        if marker == _JPEG_EOI:
            break
        if marker in _JPEG_NO_LENGTH:
            continue
        if marker in _JPEG_SOF and pos + 7 <= end:
            height = max(height, int.from_bytes(data[pos + 3 : pos + 5], "big"))
            width = max(width, int.from_bytes(data[pos + 5 : pos + 7], "big"))
        elif marker == _JPEG_SOS:
            scans += 1  # its entropy-coded data runs to the next marker: the next search skips it
        pos += max(2, int.from_bytes(data[pos : pos + 2], "big"))
    return JpegScans(scans, width, height, segments)


def check_decode_cost(data: bytes, name: str = "the image") -> None:
    """Refuse a file whose decoding would take unbounded time, before decoding starts.

    A JPEG is refused above ``MAX_JPEG_SCANS`` scans, above ``MAX_JPEG_SCAN_PIXELS`` scans x pixels
    (a 12-megapixel progressive photo with 10 scans is 0.12 billion) or above ``MAX_JPEG_SEGMENTS``
    marker segments; only the image up to its EOI counts.
    """
    found = jpeg_scans(data)
    if found is None:
        return
    if found.segments > MAX_JPEG_SEGMENTS:
        detail = f"a JPEG with more than {MAX_JPEG_SEGMENTS} marker segments: a decode bomb"
    elif found.scans > MAX_JPEG_SCANS:
        detail = f"a JPEG with {found.scans} scans (at most {MAX_JPEG_SCANS}): a decode bomb"
    elif found.pixel_passes > MAX_JPEG_SCAN_PIXELS:
        detail = (
            f"a {found.width}x{found.height} JPEG with {found.scans} scans, "
            f"{found.pixel_passes / 1e9:.1f} billion pixel passes "
            f"(at most {MAX_JPEG_SCAN_PIXELS / 1e9:g}): a decode bomb"
        )
    else:
        return
    message = f"{name} would take too long to decode ({detail})"
    raise ImageError(message, kind=ImageProblem.TOO_SLOW, detail=detail)


def _decode(image: Image.Image, name: str, max_pixels: int, min_side: int | None) -> Picture:
    width, height = image.size
    if width <= 0 or height <= 0 or width * height > max_pixels:
        raise ImageError(
            f"{name} is too large ({width}x{height} pixels; at most {max_pixels / 1e6:.0f} megapixels)",
            kind=ImageProblem.TOO_LARGE,
            detail=f"{width}x{height} pixels is above the limit of {max_pixels} (--max-pixels)",
        )
    meta = read_meta(image)
    image.seek(0)  # first frame of an animation or a multi-page file
    if min_side is not None and image.format == "JPEG":
        image.draft("RGB", (min_side, min_side))  # square: safe whatever the orientation
    image.load()
    return _finish(to_rgb(image), width, height, meta, min_side)


def _finish(work: Image.Image, width: int, height: int, meta: PhotoMeta, min_side: int | None) -> Picture:
    """Shrink (when ``min_side`` allows) and turn upright; the full size as the photo is shown."""
    work = to_rgb(work)
    if min_side is not None:
        factor = min(work.size) // (2 * min_side)
        if factor >= 2:
            work = work.reduce(factor)
    transpose = _TRANSPOSE.get(meta.orientation)
    if transpose is not None:
        work = work.transpose(transpose)
    if meta.orientation >= 5:
        width, height = height, width
    return Picture(work, width, height, meta)


def _image_error(exc: BaseException, name: str) -> ImageError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    kind, message = ImageProblem.CORRUPT, f"{name} is damaged or unreadable ({text})"
    if isinstance(exc, Image.DecompressionBombError | MemoryError):
        kind, message = ImageProblem.TOO_LARGE, f"{name} is too large ({text})"
    elif isinstance(exc, UnidentifiedImageError):
        kind, message = ImageProblem.NOT_IMAGE, f"{name} is not an image dualens can read"
        text = "cannot identify the image format"
    elif isinstance(exc, FileNotFoundError):
        kind, message = ImageProblem.UNREADABLE, f"{name} does not exist"
    elif isinstance(exc, OSError) and "truncated" in text.lower():
        kind = ImageProblem.TRUNCATED
    elif isinstance(exc, ValueError | KeyError) and "mode" in text.lower():
        kind = ImageProblem.UNSUPPORTED
    return ImageError(message, kind=kind, detail=text)
