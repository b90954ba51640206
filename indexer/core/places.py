"""Offline reverse geocoding: an EXIF GPS position to the nearest city, its region and country.

Uses the GeoNames cities of 1000+ inhabitants shipped in ``reverse_geocoder`` (a k-d tree, no
network). A position farther than :data:`MAX_KM` from every such city (at sea, in a desert) has no
place rather than a wrong one. Stored per photo by the indexer (``indexer.geocode.fill_places``), shown in
details and filterable (``Filters.place``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_KM = 60.0
_EARTH_KM = 6371.0


@dataclass(frozen=True)
class Place:
    city: str
    region: str  # first-level administrative division (state, province, region)
    country: str  # English short name (pycountry), or the ISO code when pycountry has none

    def label(self) -> str:
        """``"Paris, Ile-de-France, France"``, repeats left out (``"Tokyo, Japan"``)."""
        parts: list[str] = []
        for part in (self.city, self.region, self.country):
            if part and part not in parts:
                parts.append(part)
        return ", ".join(parts)


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def _country_name(code: str) -> str:
    import pycountry

    country = pycountry.countries.get(alpha_2=code)
    return str(getattr(country, "common_name", None) or getattr(country, "name", code)) if country else code


class Geocoder:
    """Loads the city table once (about 2 s), on the first lookup; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rg: Any = None

    def _geocoder(self) -> Any:
        with self._lock:
            if self._rg is None:
                import reverse_geocoder

                # the table ships in the package (no download); verbose=False: nothing printed
                self._rg = reverse_geocoder.RGeocoder(mode=1, verbose=False)
            return self._rg

    def places(self, positions: Sequence[tuple[float, float]]) -> list[Place | None]:
        """The place of each (latitude, longitude), None when no city lies within MAX_KM."""
        if not positions:
            return []
        found = self._geocoder().query([(float(lat), float(lon)) for lat, lon in positions])
        out: list[Place | None] = []
        for (lat, lon), city in zip(positions, found, strict=True):
            if _km(lat, lon, float(city["lat"]), float(city["lon"])) > MAX_KM:
                out.append(None)
                continue
            out.append(Place(city["name"], city["admin1"], _country_name(city["cc"])))
        return out


GEOCODER = Geocoder()
