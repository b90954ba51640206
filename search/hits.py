"""A search result: one photo, its metadata and its scores."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from indexer.core.places import Place
from indexer.core.storage.schema import Photo
from indexer.core.storage.search_reads import HIT_COLUMNS  # noqa: F401  (the columns of a hit row)


@dataclass(frozen=True)
class Hit:
    id: int
    path: str
    cosine: float  # cosine similarity between the query vector and the photo's vector
    logit: float  # the model's own score: exp(logit_scale) * cosine (+ logit_bias for SigLIP)
    probability: float  # softmax over the candidate set (CLIP-style) or sigmoid(logit) (SigLIP)
    width: int | None
    height: int | None
    taken_at: datetime | None
    camera_make: str | None
    camera_model: str | None
    file_type: str
    size: int
    mtime: datetime
    rank: int = 0  # 1-based position in the full ranking (offset included); 0 outside a ranking
    relevance: str = ""  # text queries: "strong", "good" or "weak" (search/relevance.py); else ""
    place: str = ""  # "Paris, Ile-de-France, France" from the GPS position; "" when unknown
    text: str = ""  # matched by its words: its recognised text (cleaned, cut around the match); else ""
    text_words: tuple[str, ...] = ()  # the query's words its recognised text holds (search/text_terms.py)

    @classmethod
    def from_photo(
        cls, photo: Photo, *, cosine: float = 0.0, logit: float = 0.0, probability: float = 0.0, rank: int = 0
    ) -> Hit:
        """From an ORM row: it has the attributes of :data:`HIT_COLUMNS`."""
        return cls.from_row(photo, cosine=cosine, logit=logit, probability=probability, rank=rank)

    @classmethod
    def from_row(cls, row: Any, *, cosine: float, logit: float, probability: float, rank: int) -> Hit:
        """From a row of :data:`HIT_COLUMNS` (a Core select: no ORM objects on the query path)."""
        return cls(
            id=int(row.id),
            path=row.path,
            cosine=float(cosine),
            logit=float(logit),
            probability=float(probability),
            width=row.width,
            height=row.height,
            taken_at=row.taken_at,
            camera_make=row.camera_make,
            camera_model=row.camera_model,
            file_type=row.file_type,
            size=int(row.size),
            mtime=datetime.fromtimestamp(row.mtime_ns / 1e9),
            rank=rank,
            place=Place(row.place_city or "", row.place_region or "", row.place_country or "").label(),
        )

    @property
    def date(self) -> datetime:
        """EXIF date when known, else the file's modification time (what the date filter uses)."""
        return self.taken_at or self.mtime

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hit:
        """The inverse of :meth:`to_json` (a hit as the HTTP API sends it)."""
        values = {key: value for key, value in data.items() if key in _FIELD_NAMES}
        for key in ("taken_at", "mtime"):
            if values.get(key):
                values[key] = datetime.fromisoformat(str(values[key]))
        values["text_words"] = tuple(str(w) for w in values.get("text_words") or ())
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _FIELD_NAMES}  # flat: no asdict deep copy
        for key in ("taken_at", "mtime"):
            value = out[key]
            out[key] = value.isoformat() if value is not None else None
        out["text_words"] = list(self.text_words)
        return out


_FIELD_NAMES = tuple(f.name for f in fields(Hit))
