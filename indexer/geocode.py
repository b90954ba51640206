"""End of a run: give each photo with a GPS position its place (city, region, country).

New and changed photos have none yet (the writer clears it), nor has any photo of a collection from
before places. A position with no city near enough is recorded as looked up, so it is not tried again.
"""

from __future__ import annotations

from indexer.core.places import GEOCODER, Geocoder
from indexer.core.storage.collection import Collection


def fill_places(collection: Collection, geocoder: Geocoder = GEOCODER, chunk: int = 5000) -> int:
    """Reverse-geocode the photos whose position has no place yet; returns how many got one."""
    placed = 0
    while True:
        pending = collection.rows.places_to_fill(chunk)
        if not pending:
            return placed
        places = geocoder.places([(p.lat, p.lon) for p in pending])
        collection.rows.write_places([(p.id, place) for p, place in zip(pending, places, strict=True)])
        placed += sum(place is not None for place in places)
