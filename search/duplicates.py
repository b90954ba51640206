"""Exact and near-duplicate photos: groups, each with a suggested keeper.

Exact copies share a content hash. Near-duplicates (re-encoded, resized, cropped, slightly rotated,
brightness-edited or format-converted copies) are pairs whose image-to-image vectors (the visual
space where the collection keeps one, see ``Collection.similarity_space``) are at least
``threshold`` apart in cosine, unless both carry a date taken and the dates differ: those are two
shots (a burst), not a photo and its copy. Pairs are found by a k-nearest-neighbour pass over the
index and joined into groups. dualens never deletes: see search/quarantine.py for moving copies aside.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from indexer.core.errors import UsageError
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo
from indexer.core.storage.search_reads import shared_content_hashes, vector_chunks
from indexer.core.storage.vector_index import VectorIndex

# Cosine at or above which two photos are near-duplicates: the best F1 of a sweep over the edited
# copies of `python -m tests.bench.bench_similar --select` (flickr8k-train; docs/benchmarks.md).
# Calibrated on the default model's visual vectors; a CLIP-family model's joint space may need another
# (--threshold).
DEFAULT_THRESHOLD = 0.86
NEIGHBOURS = 8  # nearest neighbours looked at per photo
CHUNK = 2048  # query vectors per FAISS search


@dataclass(frozen=True)
class Member:
    """One photo of a duplicate group."""

    id: int
    path: str
    size: int  # bytes
    width: int
    height: int
    file_type: str
    date: datetime  # date taken, else the file's modification time
    date_taken: bool  # whether ``date`` is the date taken
    similarity: float  # cosine to the keeper (1.0 for the keeper and exact copies)
    exact: bool  # same content hash as the keeper

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "file_type": self.file_type,
            "date": self.date.isoformat(timespec="seconds"),
            "date_taken": self.date_taken,
            "similarity": round(self.similarity, 4),
            "exact": self.exact,
        }


@dataclass(frozen=True)
class DuplicateGroup:
    """Photos that are copies of one another; ``members[0]`` is the suggested keeper."""

    members: tuple[Member, ...]
    reason: str  # why the keeper was suggested

    @property
    def keeper(self) -> Member:
        return self.members[0]

    @property
    def copies(self) -> tuple[Member, ...]:
        return self.members[1:]

    @property
    def exact(self) -> bool:
        return all(m.exact for m in self.copies)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "exact" if self.exact else "near",
            "keeper": self.keeper.id,
            "reason": self.reason,
            "members": [m.to_json() for m in self.members],
        }


class _Groups:
    """Union-find over photo ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        root = self.parent.setdefault(a, a)
        while root != self.parent[root]:
            root = self.parent[root]
        while a != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for a in self.parent:
            out.setdefault(self.find(a), []).append(a)
        return [sorted(g) for g in out.values() if len(g) > 1]


def check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.5 <= threshold <= 1.0:
        raise UsageError(f"the threshold is a cosine from 0.5 to 1.0, not {threshold!r}")
    return float(threshold)


def near_pairs(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]], index: VectorIndex, threshold: float, k: int = NEIGHBOURS
) -> Iterator[tuple[int, int]]:
    """(a, b) id pairs, a < b, whose vectors' cosine is at least ``threshold`` (each photo's ``k``
    nearest neighbours are looked at)."""
    for ids, vectors in chunks:
        for start in range(0, len(ids), CHUNK):
            part = ids[start : start + CHUNK]
            result = index.search(vectors[start : start + CHUNK], k + 1)
            for a, found, scores in zip(part, result.ids, result.scores, strict=True):
                for b, score in zip(found, scores, strict=True):
                    if b >= 0 and b != a and score >= threshold:
                        yield (int(min(a, b)), int(max(a, b)))


def _exact_pairs(collection: Collection) -> Iterator[tuple[int, int]]:
    """Pairs of indexed photos with the same content hash (first id with each other one)."""
    rows = shared_content_hashes(collection)
    first: dict[str | None, int] = {}
    for content, photo_id in rows:
        if content in first:
            yield first[content], int(photo_id)
        else:
            first[content] = int(photo_id)


def distinct_shots_removed(collection: Collection, pairs: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """The pairs that may be copies of one photo: not two shots with different dates taken.

    A copy keeps its original's EXIF date taken (or has none: stripped); frames of a burst, alike as
    they look, were taken at different moments (seconds, or fractions of one in SubSecTime)."""
    rows = collection.photos(sorted({i for pair in pairs for i in pair}))
    taken = {i: p.taken_at for i, p in rows.items() if p.taken_at is not None}
    return [
        (a, b)
        for a, b in sorted(pairs)
        if taken.get(a) is None or taken.get(b) is None or taken[a] == taken[b]
    ]


def duplicate_id_groups(collection: Collection, threshold: float = DEFAULT_THRESHOLD) -> list[list[int]]:
    """The ids of every group of exact copies and near-duplicates (what ``find_duplicates`` describes)."""
    threshold = check_threshold(threshold)
    space = collection.similarity_space()
    index = collection.load_index(space)
    groups = _Groups()
    for a, b in _exact_pairs(collection):
        groups.join(a, b)
    if index.ntotal:
        with vector_chunks(collection, index.dim, space) as chunks:
            pairs = set(near_pairs(chunks, index, threshold))
        for a, b in distinct_shots_removed(collection, pairs):
            groups.join(a, b)
    return groups.groups()


def find_duplicates(collection: Collection, threshold: float = DEFAULT_THRESHOLD) -> list[DuplicateGroup]:
    """Every group of exact copies and near-duplicates in the collection, largest groups first."""
    found = duplicate_id_groups(collection, threshold)
    space = collection.similarity_space()
    rows = collection.photos([i for g in found for i in g])
    vectors = dict(zip(*collection.indexed_vectors([i for g in found for i in g], space=space), strict=True))
    out = []
    for ids in found:
        members = [rows[i] for i in ids if i in rows]
        if len(members) > 1:
            out.append(_group(members, vectors))
    out.sort(key=lambda g: (-len(g.members), g.keeper.path))
    return out


def _date(photo: Photo) -> tuple[datetime, bool]:
    if photo.taken_at is not None:
        return photo.taken_at, True
    return datetime.fromtimestamp(photo.mtime_ns / 1e9, UTC).replace(tzinfo=None), False


# why the keeper came first: the first part of _keeper_order where it beats the runner-up
_REASONS = ("most pixels", "oldest", "largest file", "first by path", "first by path")


def _keeper_order(photo: Photo) -> tuple[int, datetime, int, int, str]:
    """Most pixels, then the oldest, then the largest file (least recompressed), then the shortest path."""
    return (
        -(photo.width or 0) * (photo.height or 0),
        _date(photo)[0],
        -photo.size,
        len(photo.path),
        photo.path,
    )


def _group(photos: list[Photo], vectors: dict[Any, np.ndarray]) -> DuplicateGroup:
    ordered = sorted(photos, key=_keeper_order)
    keeper, runner_up = ordered[0], ordered[1]
    ranks = zip(_keeper_order(keeper), _keeper_order(runner_up), strict=True)
    reason = next((why for why, (a, b) in zip(_REASONS, ranks, strict=True) if a != b), _REASONS[-1])
    kept = vectors.get(keeper.id)
    members = []
    for photo in ordered:
        date, taken = _date(photo)
        exact = photo.id == keeper.id or (
            photo.content_hash is not None and photo.content_hash == keeper.content_hash
        )
        own = vectors.get(photo.id)
        similarity = 1.0 if exact or kept is None or own is None else float(np.dot(kept, own))
        members.append(
            Member(
                id=photo.id,
                path=photo.path,
                size=photo.size,
                width=photo.width or 0,
                height=photo.height or 0,
                file_type=photo.file_type,
                date=date,
                date_taken=taken,
                similarity=similarity,
                exact=exact,
            )
        )
    return DuplicateGroup(tuple(members), reason)
