"""Photo metadata from EXIF: date taken, camera make/model, GPS position, orientation.

Every reader is defensive: bogus values (impossible dates, garbage rationals, wrong types) give
None, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from PIL import Image

TAG_ORIENTATION = 0x0112
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_DATETIME = 0x0132
IFD_EXIF = 0x8769
IFD_GPS = 0x8825
TAG_DATETIME_ORIGINAL = 0x9003
TAG_DATETIME_DIGITIZED = 0x9004
TAG_SUBSEC_ORIGINAL = 0x9291  # fractions of a second of DateTimeOriginal: frames of one burst differ
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 1, 2, 3, 4


@dataclass(frozen=True)
class PhotoMeta:
    taken_at: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    orientation: int = 1


def _text(value: object, limit: int = 128) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", "").strip()
    return cleaned[:limit] or None


def parse_exif_datetime(value: object) -> datetime | None:
    text = _text(value, 64)
    if not text:
        return None
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M", "%Y:%m:%d"):
        try:
            parsed = datetime.strptime(text[: len(datetime(2000, 1, 1).strftime(fmt))], fmt)
        except ValueError:
            continue
        return parsed if 1800 <= parsed.year <= 2200 else None
    return None


def with_subseconds(moment: datetime | None, subsec: object) -> datetime | None:
    """``moment`` plus EXIF SubSecTime digits ("42" = 0.42 s); bogus digits change nothing."""
    digits = _text(subsec, 16)
    if moment is None or not digits or not digits.isdigit() or not digits.isascii():
        return moment
    return moment.replace(microsecond=int((digits + "000000")[:6]))


def _rational(value: object) -> float:
    if isinstance(value, tuple) and len(value) == 2:
        num, den = value
        return float(num) / float(den)
    return float(value)  # type: ignore[arg-type]


def _gps_coordinate(dms: object, ref: object, limit: float) -> float | None:
    try:
        if not isinstance(dms, tuple | list) or len(dms) != 3:
            return None
        deg, minutes, seconds = (_rational(v) for v in dms)
        value = deg + minutes / 60.0 + seconds / 3600.0
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if value != value or not 0.0 <= value <= limit:  # NaN or out of range
        return None
    if _text(ref, 4) in ("S", "W"):
        value = -value
    return round(value, 7)


def read_meta(image: Image.Image) -> PhotoMeta:
    """Read the EXIF metadata of an opened (not necessarily loaded) image."""
    try:
        exif = image.getexif()
    except Exception:  # malformed EXIF block: the pixels may still be fine
        return PhotoMeta()
    if not exif:
        return PhotoMeta()
    try:
        sub = exif.get_ifd(IFD_EXIF)
    except Exception:
        sub = {}
    original = parse_exif_datetime(sub.get(TAG_DATETIME_ORIGINAL))
    taken = (
        with_subseconds(original, sub.get(TAG_SUBSEC_ORIGINAL))
        or parse_exif_datetime(sub.get(TAG_DATETIME_DIGITIZED))
        or parse_exif_datetime(exif.get(TAG_DATETIME))
    )
    lat = lon = None
    try:
        gps = exif.get_ifd(IFD_GPS)
    except Exception:
        gps = {}
    if gps:
        lat = _gps_coordinate(gps.get(GPS_LAT), gps.get(GPS_LAT_REF), 90.0)
        lon = _gps_coordinate(gps.get(GPS_LON), gps.get(GPS_LON_REF), 180.0)
        if lat is None or lon is None:
            lat = lon = None
    orientation = exif.get(TAG_ORIENTATION, 1)
    return PhotoMeta(
        taken_at=taken,
        camera_make=_text(exif.get(TAG_MAKE)),
        camera_model=_text(exif.get(TAG_MODEL)),
        gps_lat=lat,
        gps_lon=lon,
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1,
    )
