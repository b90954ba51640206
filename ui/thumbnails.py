"""Thumbnails made from the originals (EXIF orientation applied) and cached on disk.

Cache files live under ``<data>/thumbnails/<id % 256>/`` and are named by photo id, the
original's mtime and size, and the thumbnail size, so an edited photo gets a fresh thumbnail and
the stale one is removed. Files are written atomically (temporary file + rename), so concurrent
sessions and crashes never leave a half-written thumbnail behind. A cache that cannot be written
(disk full, read-only) never fails a request: the thumbnail is served uncached, from a private,
bounded spill folder in the system temp dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from indexer.core.errors import DualensError, UnsafePathError
from indexer.core.imaging import open_image
from ui.safety import PathGuard

log = logging.getLogger(__name__)

JPEG_QUALITY = 85
SPILL_KEEP = 256  # uncached thumbnails kept per size while the cache cannot be written (then oldest go)
PLACEHOLDER_COLOR = (236, 238, 241)


@dataclass(frozen=True)
class ThumbSpec:
    """Square crops for the grid, the whole picture (longest edge bounded) for previews."""

    px: int
    square: bool

    @property
    def tag(self) -> str:
        return f"{self.px}{'s' if self.square else 'f'}"


class ThumbnailCache:
    def __init__(self, directory: str | os.PathLike[str], guard: PathGuard) -> None:
        self.directory = Path(directory)
        self.guard = guard

    def get(self, photo_id: int, path: str, spec: ThumbSpec) -> Path | None:
        """The cached thumbnail file, made on first use; None when the original cannot be shown."""
        try:
            real = self.guard.resolve(path)
            stat = real.stat()
        except (UnsafePathError, OSError) as exc:
            log.info("no thumbnail for photo %s: %s", photo_id, exc)
            return None
        target = self._file(photo_id, stat.st_mtime_ns, stat.st_size, spec)
        if target.is_file():
            return target
        try:
            image = render(real, spec)
        except DualensError as exc:  # a damaged or unreadable photo: show a placeholder, never a traceback
            log.warning("cannot make a thumbnail of %s: %s", real, exc)
            return None
        try:
            self._write(target, image, photo_id, spec)
        except OSError as exc:  # a full or read-only cache: serve this one uncached, never fail
            log.warning("cannot cache the thumbnail of photo %s (%s); serving it uncached", photo_id, exc)
            return self._spill(target.name, image, photo_id, spec)
        return target

    def _spill(self, name: str, image: Image.Image, photo_id: int, spec: ThumbSpec) -> Path | None:
        """The thumbnail written to the user's private spill folder (see :func:`_spill_dir`; at most
        ``SPILL_KEEP`` files per size), or None when even that cannot be written."""
        try:
            folder = _spill_dir()
            owner = hashlib.blake2b(str(self.directory).encode(errors="surrogateescape"), digest_size=4)
            target = folder / f"{owner.hexdigest()}-{name}"  # ids of several collections never meet
            self._write(target, image, photo_id, spec)
            kept = sorted(folder.glob(f"*-{spec.tag}.jpg"), key=_mtime_or_zero)
            for old in kept[:-SPILL_KEEP]:
                old.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot write the thumbnail of photo %s anywhere: %s", photo_id, exc)
            return None
        return target

    def _file(self, photo_id: int, mtime_ns: int, size: int, spec: ThumbSpec) -> Path:
        shard = f"{photo_id % 256:02x}"
        return self.directory / shard / f"{photo_id}-{mtime_ns}-{size}-{spec.tag}.jpg"

    def _write(self, target: Path, image: Image.Image, photo_id: int, spec: ThumbSpec) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as handle:
                image.save(handle, format="JPEG", quality=JPEG_QUALITY, optimize=True)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for stale in target.parent.glob(f"{photo_id}-*-{spec.tag}.jpg"):
            if stale != target:
                stale.unlink(missing_ok=True)


def _spill_dir() -> Path:
    """This user's private folder (mode 0700, checked: never a link or another user's folder) in the
    system temp dir, shared by every dualens process of the user and bounded (``SPILL_KEEP``), so
    nothing needs removing at exit and a response still reading a file never sees it go."""
    folder = Path(tempfile.gettempdir()) / f"dualens-thumbnails-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    found = folder.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise OSError(f"{folder} is not this user's private folder")
    return folder


def _mtime_or_zero(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # removed meanwhile by another request
        return 0


def render(path: Path, spec: ThumbSpec) -> Image.Image:
    """Decode just enough of the original (JPEG draft mode), orient it, and shrink it."""
    rgb = open_image(path, name=f"photo {path}", min_side=spec.px).image
    if spec.square:
        return ImageOps.fit(rgb, (spec.px, spec.px), Image.Resampling.LANCZOS)
    rgb.thumbnail((spec.px, spec.px), Image.Resampling.LANCZOS)
    return rgb


@lru_cache(maxsize=4)
def placeholder(px: int) -> Image.Image:
    """A neutral square shown for a photo that is missing, unreadable or outside the roots."""
    image = Image.new("RGB", (px, px), PLACEHOLDER_COLOR)
    draw = ImageDraw.Draw(image)
    c, r = px // 2, px // 8
    draw.rectangle((c - 2 * r, c - r, c + 2 * r, c + int(1.6 * r)), outline=(170, 175, 182), width=3)
    draw.ellipse((c - r // 2, c - r // 4, c + r // 2, c + 3 * r // 4), outline=(170, 175, 182), width=3)
    draw.line((c - 2 * r, c + 2 * r, c + 2 * r, c - 2 * r), fill=(170, 175, 182), width=3)
    return image
