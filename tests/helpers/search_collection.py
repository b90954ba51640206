"""Small collections built directly from vectors, for search tests (no image decoding, no indexer run)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from indexer.core.storage.collection import Collection, InfoKey, set_info, utcnow
from indexer.core.storage.schema import Photo, PhotoStatus, Root, vector_to_blob


@dataclass(frozen=True)
class FakePhoto:
    path: str  # relative to the root
    vector: np.ndarray
    file_type: str = "jpg"
    taken_at: datetime | None = None
    mtime: datetime = datetime(2020, 1, 1, 12, 0)


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def make_collection(
    data: Path,
    root: Path,
    photos: Sequence[FakePhoto],
    *,
    model_id: str,
    save_index: bool = True,
    db_url: str | None = None,
) -> list[int]:
    """Create a collection in ``data`` holding ``photos`` below ``root``; returns their ids.

    ``model_id`` is what the indexer stores: ``DualEncoder(model_id)`` loads that model again.
    """
    root.mkdir(parents=True, exist_ok=True)
    dim = len(photos[0].vector) if photos else 0
    with Collection.open(data, create=True, db_url=db_url) as collection:
        with collection.session() as s, s.begin():
            s.add(Root(path=str(root), added_at=utcnow()))
            rows = []
            for p in photos:
                row = Photo(
                    path=str(root / p.path),
                    root=str(root),
                    file_type=p.file_type,
                    size=1000,
                    mtime_ns=int(p.mtime.timestamp() * 1e9),
                    width=64,
                    height=48,
                    taken_at=p.taken_at,
                    status=PhotoStatus.INDEXED,
                    indexed_at=utcnow(),
                    vector=vector_to_blob(unit(p.vector)),
                )
                s.add(row)
                rows.append(row)
            set_info(s, InfoKey.MODEL_ID, model_id)
            set_info(s, InfoKey.DIM, dim)
            set_info(s, InfoKey.GENERATION, 1)
            s.flush()
            ids = [int(r.id) for r in rows]
        if save_index:
            collection.rebuild_index()
    return ids
