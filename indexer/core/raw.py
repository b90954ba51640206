"""Camera RAW files (DNG, CR2, CR3, NEF, ARW, ORF, RW2, RAF, …) through LibRaw (rawpy).

A RAW file carries a full-size or large JPEG preview rendered by the camera itself: dualens uses it
(fast, and the camera's own colours), and develops the sensor data at half size only when there is
no preview worth the name. The orientation comes from the preview's own EXIF, else from LibRaw's
reading of the RAW file; date, camera and GPS from the preview's EXIF, else from the RAW's own TIFF
structure where Pillow can read it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image

from indexer.core.errors import ImageError, ImageProblem
from indexer.core.exif import PhotoMeta, read_meta

RAW_EXTENSIONS: dict[str, str] = dict.fromkeys(
    (".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2", ".raf",
     ".pef", ".srw", ".3fr", ".iiq", ".erf", ".kdc", ".mrw", ".x3f"),
    "raw",
)  # fmt: skip
MIN_PREVIEW_SIDE = 512  # a smaller embedded preview (a thumbnail) is not used: the sensor data is
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}  # LibRaw's flip -> the EXIF orientation
# rawpy warns in every forked process (decode workers, upload children) that its OpenMP build may
# deadlock after fork, whether or not a RAW file is ever read there. dualens reads a RAW file through
# its embedded JPEG preview (no OpenMP) and develops sensor data only when there is none; a decoder
# stuck there is killed by the wall-clock decode timeout. The warning is noise on the user's terminal.
warnings.filterwarnings("ignore", message="rawpy is being used in a process created", category=RuntimeWarning)


def raw_available() -> bool:
    try:
        import rawpy  # noqa: F401
    except ImportError:
        return False
    return True


def _preview(raw: Any) -> Image.Image | None:
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        preview = Image.open(io.BytesIO(thumb.data))
        preview.load()
        return preview
    return Image.fromarray(np.asarray(thumb.data, dtype=np.uint8)) if thumb.data.ndim == 3 else None


def _container_meta(data: bytes) -> PhotoMeta:
    """EXIF of the RAW's own TIFF structure (DNG, NEF, CR2, ARW, …), without decoding pixels."""
    try:
        with Image.open(io.BytesIO(data)) as container:
            return read_meta(container)
    except Exception:  # not a TIFF Pillow understands (CR3, RAF): no metadata, the photo still counts
        return PhotoMeta()


def open_raw(data: bytes, name: str, max_pixels: int) -> tuple[Image.Image, int, int, PhotoMeta]:
    """(image as stored, full width, full height, metadata with the orientation to apply)."""
    import rawpy

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            width, height = int(sizes.width), int(sizes.height)
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise ImageError(
                    f"{name} is too large ({width}x{height} pixels)",
                    kind=ImageProblem.TOO_LARGE,
                    detail=f"{width}x{height} pixels is above the limit of {max_pixels} (--max-pixels)",
                )
            orientation = _FLIP_TO_ORIENTATION.get(int(sizes.flip), 1)
            preview = _preview(raw)
            if preview is not None and min(preview.size) >= min(MIN_PREVIEW_SIDE, width, height):
                meta = read_meta(preview)
                if not meta.taken_at and not meta.camera_model:
                    meta = _container_meta(data)
                if meta.orientation == 1:
                    meta = replace(meta, orientation=orientation)
                image = preview.convert("RGB")
            else:  # develop the sensor data; LibRaw turns it upright itself
                rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
                image = Image.fromarray(rgb)
                meta = replace(_container_meta(data), orientation=1)
                if orientation >= 5:
                    width, height = height, width
    except ImageError:
        raise
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = (
            ImageProblem.NOT_IMAGE
            if isinstance(exc, rawpy.LibRawFileUnsupportedError)
            else ImageProblem.CORRUPT
        )
        raise ImageError(f"{name} is a RAW file LibRaw cannot read ({text})", kind=kind, detail=text) from exc
    return image, width, height, meta
