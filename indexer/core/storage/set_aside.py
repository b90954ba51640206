"""Photos moved aside by a quarantine: out of the collection at once, back in on undo.

A move aside and its undo are writers of the collection, as an indexer is: they run inside
:func:`writer` (the indexer's locks, the database checked writable, refused in one line otherwise)
before any file moves. :func:`take_out` deletes the rows of photos whose files were just moved away and
returns them whole (every column, vectors and recognised text included); :func:`put_back` inserts
such rows again under their own ids, except where a row holds that id or path again (a `dualens
index` ran meanwhile).
Each bumps the generation in the transaction that changes the rows and then brings the vector index
files in line with a delta (``VectorIndexes.update``), so `dualens check` passes right after either.
:func:`save_rows`/:func:`load_rows` keep the rows beside the quarantine's manifest (JSON, bytes in
base64), so an undo after a restart puts them back too. Nothing here moves photos.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, LargeBinary, delete, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from indexer.core.errors import CollectionError
from indexer.core.storage.collection import Collection
from indexer.core.storage.database import InfoKey, bump_generation
from indexer.core.storage.locks import collection_lock
from indexer.core.storage.schema import CollectionInfo, Photo, PhotoStatus, PhotoText, TextStatus

Row = dict[str, Any]
_CHUNK = 500
ROWS_NAME = "rows.json"  # beside the quarantine's manifest.json
TEXT_KEY = "recognised_text"  # a set-aside row's photo_text row (its words come back with it)
# photo_text's own columns (a server's generated tsvector column is not one of the model's)
_TEXT_COLUMNS = tuple(PhotoText.__table__.columns)
_TEXT_NAMES = frozenset(c.name for c in _TEXT_COLUMNS)
_ROWS_KIND = "dualens-set-aside"


@contextmanager
def writer(collection: Collection) -> Iterator[None]:
    """Hold the collection's indexing locks (the lock file, then the server's) with its database
    checked writable; CollectionError in one line, before the caller changes anything, otherwise."""
    with collection_lock(collection.paths), collection.database.indexer_lock():
        try:
            with collection.database.writing() as s:  # a write statement that changes nothing
                s.execute(
                    update(CollectionInfo)
                    .where(CollectionInfo.key == InfoKey.GENERATION)
                    .values(value=CollectionInfo.value)
                )
        except (SQLAlchemyError, CollectionError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise CollectionError(
                f"the collection in {collection.where} cannot be written ({reason}); nothing was moved"
            ) from exc
        yield


def take_out(collection: Collection, ids: Sequence[int]) -> list[Row]:
    """Delete the rows of these photos (unknown ids ignored) in one transaction that bumps the
    generation, then take their vectors out of the index files; their former rows. Call in :func:`writer`."""
    wanted = sorted({int(i) for i in ids})
    rows: list[Row] = []
    columns = Photo.__table__.columns
    before = collection.indexes.state()
    with collection.database.writing() as s:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            found = s.execute(select(*columns).where(Photo.id.in_(chunk))).mappings().all()
            texts = s.execute(select(*_TEXT_COLUMNS).where(PhotoText.photo_id.in_(chunk))).mappings().all()
            by_photo = {int(t["photo_id"]): dict(t) for t in texts}
            rows += [_with_text(dict(r), by_photo.get(int(r["id"]))) for r in found]
            s.execute(delete(PhotoText).where(PhotoText.photo_id.in_(chunk)))
            s.execute(delete(Photo).where(Photo.id.in_(chunk)))
        if rows:
            bump_generation(s)
    if rows:
        collection.indexes.update(before, [int(r["id"]) for r in rows], [])
    return rows


def put_back(collection: Collection, rows: Sequence[Row]) -> list[int]:
    """Insert rows that :func:`take_out` returned, bumping the generation, then add their vectors to the
    index files; the ids put back (a row whose id or path is taken again is left out: the indexer
    already knows that file). Call in :func:`writer`."""
    back: list[int] = []
    before = collection.indexes.state()
    with collection.database.writing() as s:
        for row in rows:
            taken = s.execute(
                select(Photo.id).where(or_(Photo.id == row["id"], Photo.path == row["path"]))
            ).first()
            if taken is None:
                photo = {k: v for k, v in row.items() if k != TEXT_KEY}
                s.execute(insert(Photo).values(**photo))
                if row.get(TEXT_KEY):  # its recognised text too, so it is found by its words at once
                    s.execute(insert(PhotoText).values(**row[TEXT_KEY]))
                back.append(int(row["id"]))
        if back:
            bump_generation(s)
    if back:
        collection.indexes.update(before, [], back)
    return back


def _with_text(row: Row, text: Row | None) -> Row:
    if text is not None:
        row[TEXT_KEY] = {k: v for k, v in text.items() if k in _TEXT_NAMES}
    return row


def rows_file(manifest: Path) -> Path:
    """Where the rows of a quarantine's photos are kept: beside its manifest."""
    manifest = Path(manifest)
    return (manifest if manifest.is_dir() else manifest.parent) / ROWS_NAME


def _encode(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _decode(row: dict[str, Any], table: Any = Photo.__table__) -> Row:
    columns = table.columns
    out: Row = {}
    for name, value in row.items():
        column = columns.get(name)
        if name == TEXT_KEY and table is Photo.__table__ and isinstance(value, dict):
            out[name] = _decode(value, PhotoText.__table__)
        elif column is None or value is None:
            out[name] = value
        elif isinstance(column.type, LargeBinary):
            out[name] = base64.b64decode(value)
        elif isinstance(column.type, DateTime):
            out[name] = datetime.fromisoformat(value)
        elif name == "status":  # an enum, kept by its value
            out[name] = PhotoStatus(value) if table is Photo.__table__ else TextStatus(value)
        else:
            out[name] = value
    return out


def save_rows(manifest: Path, rows: Sequence[Row], owner: str) -> bool:
    """Write the rows of the collection ``owner`` (its :meth:`Collection.collection_id`) beside the manifest
    (atomically); False when the quarantine cannot be written."""
    target = rows_file(manifest)
    encoded = [{k: _encode(v) for k, v in r.items()} for r in rows]
    body = {"kind": _ROWS_KIND, "version": 1, "owner": owner, "rows": encoded}
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_text(json.dumps(body), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        return False
    return True


def load_rows(manifest: Path, owner: str) -> list[Row]:
    """The rows :func:`save_rows` kept for this quarantine, if they are rows of the collection ``owner``
    (none when there is no readable file, or they belong to another collection: its ids, vectors and
    model are not this one's)."""
    try:
        body = json.loads(rows_file(manifest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(body, dict) or body.get("kind") != _ROWS_KIND:
        return []
    if body.get("owner", owner) != owner:
        return []
    try:
        return [_decode(_checked(r)) for r in body["rows"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CollectionError(
            f"the rows kept in {rows_file(manifest)} are damaged ({exc}); remove that file to put the "
            "photos back without them (`dualens index` then reads them again)"
        ) from exc


_PHOTO_NAMES = frozenset(c.name for c in Photo.__table__.columns)


def _checked(row: Any) -> dict[str, Any]:
    """``row`` when it is a photo row as :func:`save_rows` wrote it (an int id, a path, only the
    columns of ``photos`` and its recognised text); ValueError otherwise."""
    if not isinstance(row, dict) or not (isinstance(row.get("id"), int) and isinstance(row.get("path"), str)):
        raise ValueError("a row without its id or path")
    unknown = set(row) - _PHOTO_NAMES - {TEXT_KEY}
    text = row.get(TEXT_KEY)
    if text is not None:
        unknown |= set(text) - _TEXT_NAMES if isinstance(text, dict) else {TEXT_KEY}
    if unknown:
        raise ValueError(f"unknown fields {', '.join(sorted(map(str, unknown)))}")
    return row
