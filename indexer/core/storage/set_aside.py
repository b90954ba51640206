"""Photos moved aside by a quarantine: out of the collection at once, back in on undo.

:func:`take_out` deletes the rows of photos whose files were just moved away and returns them whole
(every column, vectors included); :func:`put_back` inserts such rows again under their own ids, except
where a row holds that id or path again (a `dualens index` ran meanwhile). The vector index file is
not rewritten: searches skip index ids without a row, and the next `dualens index` rebuilds the index
because its size no longer matches the indexed rows. Nothing here touches files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, or_, select

from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo

Row = dict[str, Any]
_CHUNK = 500


def take_out(collection: Collection, ids: Sequence[int]) -> list[Row]:
    """Delete the rows of these photos (unknown ids ignored) in one transaction; their former rows."""
    wanted = sorted({int(i) for i in ids})
    rows: list[Row] = []
    columns = Photo.__table__.columns
    with collection.session() as s, s.begin():
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            found = s.execute(select(*columns).where(Photo.id.in_(chunk))).mappings().all()
            rows += [dict(r) for r in found]
            s.execute(delete(Photo).where(Photo.id.in_(chunk)))
    return rows


def put_back(collection: Collection, rows: Sequence[Row]) -> list[int]:
    """Insert rows that :func:`take_out` returned; the ids put back (a row whose id or path is taken
    again is left out: the indexer already knows that file)."""
    back: list[int] = []
    with collection.session() as s, s.begin():
        for row in rows:
            taken = s.execute(
                select(Photo.id).where(or_(Photo.id == row["id"], Photo.path == row["path"]))
            ).first()
            if taken is None:
                s.execute(insert(Photo).values(**row))
                back.append(int(row["id"]))
    return back
