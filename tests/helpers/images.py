"""Generators of test photos: every format the indexer reads, EXIF variants, and broken files.

All generators are deterministic (seeded) and write small files quickly.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

TAG_ORIENTATION, TAG_MAKE, TAG_MODEL = 0x0112, 0x010F, 0x0110
IFD_EXIF, IFD_GPS, TAG_DATETIME_ORIGINAL = 0x8769, 0x8825, 0x9003


@dataclass(frozen=True)
class Exif:
    orientation: int | None = None
    taken_at: datetime | str | None = None
    make: str | None = None
    model: str | None = None
    gps: tuple[float, float] | None = None  # (lat, lon) in degrees

    def to_bytes(self) -> bytes:
        exif = Image.Exif()
        if self.orientation is not None:
            exif[TAG_ORIENTATION] = self.orientation
        if self.make is not None:
            exif[TAG_MAKE] = self.make
        if self.model is not None:
            exif[TAG_MODEL] = self.model
        if self.taken_at is not None:
            value = self.taken_at
            text = value.strftime("%Y:%m:%d %H:%M:%S") if isinstance(value, datetime) else value
            exif.get_ifd(IFD_EXIF)[TAG_DATETIME_ORIGINAL] = text
        if self.gps is not None:
            lat, lon = self.gps
            gps = exif.get_ifd(IFD_GPS)
            gps[1], gps[2] = ("N" if lat >= 0 else "S"), _dms(abs(lat))
            gps[3], gps[4] = ("E" if lon >= 0 else "W"), _dms(abs(lon))
        return exif.tobytes()


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 4)
    return float(degrees), float(minutes), seconds


def pattern(size: tuple[int, int] = (64, 48), seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A smooth, seeded colour pattern (distinct seeds give distinct embeddings)."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.5, 4.0), rng.uniform(0.5, 4.0), rng.uniform(0, 6.28)
        channels.append(127.5 + 127.5 * np.sin(fx * x / width * 6.28 + fy * y / height * 6.28 + phase))
    image = Image.fromarray(np.stack(channels, axis=-1).astype(np.uint8), "RGB")
    return image if mode == "RGB" else image.convert(mode)


def marked(size: tuple[int, int] = (60, 40), seed: int = 0) -> Image.Image:
    """A pattern with a bright red block in the top-left corner (to check orientation)."""
    image = pattern(size, seed)
    block = Image.new("RGB", (size[0] // 3, size[1] // 3), (255, 0, 0))
    image.paste(block, (0, 0))
    return image


def save_jpeg(
    path: Path,
    image: Image.Image | None = None,
    *,
    exif: Exif | None = None,
    quality: int = 90,
    seed: int = 0,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = image if image is not None else pattern(seed=seed)
    kwargs = {"exif": exif.to_bytes()} if exif is not None else {}
    image.save(path, "JPEG", quality=quality, **kwargs)
    return path


def save_as(path: Path, fmt: str, image: Image.Image | None = None, *, seed: int = 0) -> Path:
    """Save in PNG, WEBP, GIF, BMP or TIFF (format from ``fmt``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = image if image is not None else pattern(seed=seed)
    if fmt.upper() == "GIF":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE)
    image.save(path, fmt.upper())
    return path


def save_animated_gif(path: Path, frames: int = 3, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [pattern(seed=seed + i).convert("P", palette=Image.Palette.ADAPTIVE) for i in range(frames)]
    images[0].save(path, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def save_png16(path: Path, size: tuple[int, int] = (32, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (np.linspace(0, 65535, size[0] * size[1]).reshape(size[1], size[0])).astype(np.uint16)
    Image.fromarray(arr).save(path, "PNG")  # mode I;16
    return path


def save_palette_transparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = pattern((32, 32)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image.info["transparency"] = 0
    image.save(path, "PNG", transparency=0)
    return path


def save_cmyk_jpeg(path: Path, seed: int = 0) -> Path:
    return save_jpeg(path, pattern(seed=seed).convert("CMYK"))


def jpeg_bytes(image: Image.Image | None = None, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    (image or pattern()).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# ---------------------------------------------------------------- broken files
def write_truncated_jpeg(path: Path, seed: int = 0) -> Path:
    data = jpeg_bytes(pattern((128, 96), seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def write_zero_bytes(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_random_bytes(path: Path, n: int = 4096, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def write_text_as_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not a photo\n" * 20)
    return path


def write_corrupt_jpeg(path: Path, seed: int = 0) -> Path:
    """A JPEG header followed by garbage scan data."""
    data = bytearray(jpeg_bytes(pattern((128, 96), seed)))
    rng = np.random.default_rng(seed)
    start = len(data) // 3
    data[start:-2] = rng.integers(0, 256, len(data) - 2 - start, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def write_bomb_png(path: Path, size: tuple[int, int] = (30000, 30000)) -> Path:
    """A tiny PNG file whose header declares a huge canvas (a decompression bomb)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    # IHDR chunk: length(4) 'IHDR'(4) width(4) height(4) ... crc(4), right after the 8-byte signature
    data[16:24] = struct.pack(">II", *size)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def _jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, bytes) of each segment after SOI; a scan's segment includes its entropy-coded data."""
    i, out = 2, []
    while i < len(data):
        marker = data[i + 1]
        if marker == 0xD9:
            out.append((marker, data[i : i + 2]))
            break
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:
            while True:  # entropy-coded data runs to the next marker that is not a stuffed 0xFF or RSTn
                end = data.index(b"\xff", end)
                if data[end + 1] == 0x00 or 0xD0 <= data[end + 1] <= 0xD7:
                    end += 2
                    continue
                break
        out.append((marker, data[i:end]))
        i = end
    return out


def write_scan_bomb(path: Path, scans: int = 3000, size: tuple[int, int] = (1024, 1024)) -> Path:
    """A small progressive JPEG that repeats its last scan ``scans`` times: libjpeg decodes every
    scan over the whole image, so ~40 KB cost seconds of CPU (minutes at 20 MB): a decode bomb."""
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 130, 140)).save(buf, "JPEG", progressive=True, quality=50)
    segments = _jpeg_segments(buf.getvalue())
    last_scan = [s for m, s in segments if m == 0xDA][-1]
    body = b"".join(s for m, s in segments if m != 0xD9)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8" + body + last_scan * scans + b"\xff\xd9")
    return path


def save_dng(
    path: Path, image: Image.Image | None = None, *, preview: bool = True, orientation: int = 1
) -> Path:
    """A small real DNG (camera RAW): 16-bit linear sensor data in a sub-IFD, and in IFD0, with
    ``preview``, an 8-bit RGB preview of the same photo (as cameras embed) with make, model, date
    and ``orientation``. LibRaw reads both parts."""
    import tifffile

    rgb = np.asarray((image or pattern((64, 48), seed=7)).convert("RGB"), dtype=np.uint16)
    dng = [(50706, "B", 4, (1, 4, 0, 0), True), (50708, "s", 0, "dualens test camera", True)]
    camera = [
        (271, "s", 0, "Acme", True),
        (272, "s", 0, "RawCam 1", True),
        (306, "s", 0, "2021:06:01 12:00:00", True),
    ]
    sensor = [
        (50717, "H", 1, 65535, True),
        (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path) as tif:
        if preview:
            tif.write(
                rgb.astype(np.uint8), photometric="rgb", subfiletype=1, subifds=1, metadata=None,
                extratags=[*dng, *camera, (274, "H", 1, orientation, True)],
            )  # fmt: skip
            tif.write(rgb * 257, photometric=34892, subfiletype=0, metadata=None, extratags=sensor)
        else:
            tif.write(rgb * 257, photometric=34892, metadata=None, extratags=[*dng, *camera, *sensor])
    return path
