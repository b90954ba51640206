"""Exact and near-duplicate photos: groups, each with a suggested keeper.

Exact copies share a content hash. Near-duplicates (re-encoded, resized, cropped, slightly rotated,
brightness-edited or format-converted copies) are pairs whose image-to-image vectors (the visual
space where the collection keeps one, see ``Collection.similarity_space``) are at least
``threshold`` apart in cosine, unless both carry a date taken and the dates differ: those are two
shots (a burst), not a photo and its copy. Low-information images (text pages, noise, flat colour)
look alike to the model whatever they show: they pair only when their pixels are the same. Pairs are
found by a k-nearest-neighbour pass over the index and joined into groups in which every two photos
are alike (cliques). A photo and a link to it are one file. A copy is *sure* (pre-checked in the UI,
moved by ``--quarantine``) only when it has the keeper's content or pixels: a similar photo without
dates may be another frame of a burst, so it is listed for review. dualens never deletes: see
search/quarantine.py for moving copies aside.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from PIL import Image

from indexer.core.errors import ImageError, UsageError
from indexer.core.imaging import open_image
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo
from indexer.core.storage.search_reads import shared_content_hashes, vector_chunks
from indexer.core.storage.vector_index import VectorIndex
from indexer.core.text import printable
from search.limits import DUPLICATE_THRESHOLD

# Cosine at or above which two photos are near-duplicates: the best F1 of a sweep over the edited
# copies of `python -m tests.bench.bench_similar --select` (flickr8k-train; docs/benchmarks.md).
# Calibrated on the default model's visual vectors; a CLIP-family model's joint space may need another
# (--threshold).
DEFAULT_THRESHOLD = DUPLICATE_THRESHOLD
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
    sure: bool = False  # a copy beyond doubt (same content or pixels, no link to it): pre-checked, moved
    linked: bool = False  # a symlink or hard link in the collection leads to it: never moved by itself

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
            "sure": self.sure,
            "linked": self.linked,
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


# A copy beyond doubt has the same pixels as its keeper: re-encoded, resized, brightened. Measured with
# pixels_of on 40 flickr8k-1k photos: JPEG quality 40 and 50 % resizes differ by at most 0.55 (in
# standard deviations of the 16x16 colour thumbnail) and keep a 64x64 grey correlation of 0.97 or
# more; 38 of 40 brightness/contrast x1.2 copies pass; no 90 % crop, 5° rotation or pair of distinct
# photos (780) does. The two frames of a burst (191003285/191003287) differ by 2.1 (grey 0.84),
# synthetic burst frames (a subject moving on a fixed background) by 1.9 or more.
SAME_COLOUR = 1.0  # largest per-cell difference of the z-scored 16x16 colour thumbnails
SAME_GREY = 0.95  # smallest correlation of the 64x64 grey thumbnails
# Low-information images (text pages, noise, flat colour) look alike to the model whatever they show
# (different text pages at cosines of 0.95-0.99): below this standard deviation of the 32x32 grey
# thumbnail (0..1 scale; text pages 0.06-0.07, noise 0.02, flat 0; 1 % of flickr8k-1k and
# imagenet-sample photos) two photos are grouped only when their pixels are the same.
LOW_DETAIL = 0.075


@dataclass(frozen=True)
class Pixels:
    """A photo's pixels at thumbnail sizes: enough to tell a re-encoded copy from another shot."""

    colour: np.ndarray  # 16x16x3, each channel z-scored
    grey: np.ndarray  # 64x64 grey, flattened, zero mean and unit norm (all zeros when flat)
    detail: float  # standard deviation of the 32x32 grey thumbnail (0..0.5)

    @property
    def low_information(self) -> bool:
        return self.detail < LOW_DETAIL


def pixels_of(path: str) -> Pixels | None:
    """The thumbnails of one photo file; None when it cannot be read now."""
    try:
        image = open_image(path, name=printable(path), min_side=256).image
    except ImageError:
        return None
    box = Image.Resampling.BOX
    grey_image = image.convert("L")
    detail = float((np.asarray(grey_image.resize((32, 32), box), dtype=np.float32) / 255).std())
    grey = np.asarray(grey_image.resize((64, 64), box), dtype=np.float32).ravel()
    grey = grey - grey.mean()
    norm = float(np.linalg.norm(grey))
    grey = grey / norm if norm > 1e-3 else np.zeros_like(grey)
    colour = np.asarray(image.resize((16, 16), box), dtype=np.float32) / 255
    colour = (colour - colour.mean((0, 1))) / np.maximum(colour.std((0, 1)), 0.02)
    return Pixels(colour, grey, detail)


def same_pixels(a: Pixels | None, b: Pixels | None) -> bool:
    """Whether two photos have the same pixels up to re-encoding, resizing and a global brightness
    or contrast change (a moved subject, another page of text or another noise image does not)."""
    if a is None or b is None:
        return False
    colour = float(np.abs(a.colour - b.colour).mean(-1).max())
    return colour <= SAME_COLOUR and float(a.grey @ b.grey) >= SAME_GREY


def _different_shots(a: Photo, b: Photo) -> bool:
    return a.taken_at is not None and b.taken_at is not None and a.taken_at != b.taken_at


class _Evidence:
    """What decides whether two photos are copies: content hash, dates taken, vectors, pixels."""

    def __init__(self, rows: dict[int, Photo], vectors: dict[int, np.ndarray], threshold: float) -> None:
        self.rows, self.vectors, self.threshold = rows, vectors, threshold
        self._pixels: dict[int, Pixels | None] = {}

    def pixels(self, photo_id: int) -> Pixels | None:
        if photo_id not in self._pixels:
            row = self.rows.get(photo_id)
            self._pixels[photo_id] = pixels_of(row.path) if row is not None else None
        return self._pixels[photo_id]

    def cosine(self, a: int, b: int) -> float:
        va, vb = self.vectors.get(a), self.vectors.get(b)
        return -1.0 if va is None or vb is None else float(np.dot(va, vb))

    def alike(self, a: int, b: int) -> bool:
        """Copies of one photo: the same content, or (not two shots with different dates taken) a
        cosine of at least the threshold, and the same pixels where either one is low-information."""
        ra, rb = self.rows.get(a), self.rows.get(b)
        if ra is None or rb is None:
            return False
        if ra.content_hash is not None and ra.content_hash == rb.content_hash:
            return True
        if _different_shots(ra, rb) or self.cosine(a, b) < self.threshold:
            return False
        pa, pb = self.pixels(a), self.pixels(b)
        if (pa is not None and pa.low_information) or (pb is not None and pb.low_information):
            return same_pixels(pa, pb)
        return True


def _cliques(units: list[int], edges: list[tuple[int, int]], evidence: _Evidence) -> list[list[int]]:
    """Complete-linkage grouping: edges, most alike first, join two groups only when every photo of
    one is alike to every photo of the other, so no group chains photos that are not copies."""
    cluster = {u: [u] for u in units}
    ordered = sorted(edges, key=lambda e: (-evidence.cosine(*e), e))
    for a, b in ordered:
        ca, cb = cluster[a], cluster[b]
        if ca is cb or not all(evidence.alike(x, y) for x in ca for y in cb):
            continue
        ca.extend(cb)
        for u in cb:
            cluster[u] = ca
    seen: set[int] = set()
    out = []
    for members in cluster.values():
        if id(members) not in seen:
            seen.add(id(members))
            out.append(sorted(members))
    return out


def _file_key(path: str) -> tuple[object, ...]:
    """One file, whatever link leads to it."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.realpath(path))
    return ("inode", st.st_dev, st.st_ino)


def _one_per_file(ids: list[int], rows: dict[int, Photo]) -> tuple[list[int], set[int]]:
    """The group with links resolved: one member per file (the file's own path rather than a
    symlink to it), and the members that a link in the collection leads to."""
    by_file: dict[tuple[object, ...], list[int]] = {}
    for i in ids:
        by_file.setdefault(_file_key(rows[i].path), []).append(i)
    kept, linked = [], set()
    for same in by_file.values():
        same.sort(key=lambda i: (os.path.islink(rows[i].path), len(rows[i].path), rows[i].path))
        kept.append(same[0])
        if len(same) > 1:
            linked.add(same[0])
    return sorted(kept), linked


@dataclass
class _Found:
    groups: list[list[int]]
    linked: set[int]  # members that another indexed path links to
    evidence: _Evidence


def _find(collection: Collection, threshold: float) -> _Found:
    threshold = check_threshold(threshold)
    space = collection.similarity_space()
    index = collection.load_index(space)
    exact = _Groups()
    for a, b in _exact_pairs(collection):
        exact.join(a, b)
    pairs: list[tuple[int, int]] = []
    if index.ntotal:
        with vector_chunks(collection, index.dim, space) as chunks:
            found = set(near_pairs(chunks, index, threshold))
        pairs = distinct_shots_removed(collection, found)
    ids = sorted(set(exact.parent) | {i for pair in pairs for i in pair})
    rows = collection.photos(ids)
    found_ids, matrix = collection.indexed_vectors(ids, space=space)
    vectors = {int(i): v for i, v in zip(found_ids, matrix, strict=True)}
    evidence = _Evidence(rows, vectors, threshold)
    unit = {i: exact.find(i) for i in ids}  # exact copies are one unit: same pixels, same vector
    edges = sorted({(min(unit[a], unit[b]), max(unit[a], unit[b])) for a, b in pairs if unit[a] != unit[b]})
    members: dict[int, list[int]] = {}
    for i in ids:
        members.setdefault(unit[i], []).append(i)
    groups, linked = [], set()
    for clique in _cliques(sorted(members), edges, evidence):
        group = [i for u in clique for i in members[u] if i in rows]
        files, links = _one_per_file(group, rows)
        if len(files) > 1:
            groups.append(files)
            linked |= links
    return _Found(groups, linked, evidence)


def duplicate_id_groups(collection: Collection, threshold: float = DEFAULT_THRESHOLD) -> list[list[int]]:
    """The ids of every group of exact copies and near-duplicates (what ``find_duplicates`` describes)."""
    return _find(collection, threshold).groups


def newest_first(groups: list[DuplicateGroup]) -> list[DuplicateGroup]:
    """The groups ordered by their newest photo (date taken, else file date), newest first; each
    group keeps its members' order (the keeper first)."""
    return sorted(groups, key=lambda g: max(m.date.replace(tzinfo=None) for m in g.members), reverse=True)


def find_duplicates(collection: Collection, threshold: float = DEFAULT_THRESHOLD) -> list[DuplicateGroup]:
    """Every group of exact copies and near-duplicates in the collection, largest groups first.

    Every two photos of a group are alike (a clique, not a chain); a photo and a symlink to it are
    one file, never a keeper and its copy. Only ``sure`` copies (the same content or the same pixels
    as the keeper, and no link leads to them) are meant to be moved without a look."""
    found = _find(collection, threshold)
    rows = found.evidence.rows
    out = [_group([rows[i] for i in ids], found) for ids in found.groups]
    out.sort(key=lambda g: (-len(g.members), g.keeper.path))
    return out


def _date(photo: Photo) -> tuple[datetime, bool]:
    if photo.taken_at is not None:
        return photo.taken_at, True
    return datetime.fromtimestamp(photo.mtime_ns / 1e9, UTC).replace(tzinfo=None), False


# why the keeper came first: the first part of _keeper_order where it beats the runner-up
_REASONS = ("a link leads to it", "most pixels", "oldest", "largest file", "first by path", "first by path")


def _keeper_order(photo: Photo, linked: set[int]) -> tuple[bool, int, datetime, int, int, str]:
    """A file that a link leads to (moving it would break the link), then the most pixels, the
    oldest, the largest file (least recompressed), the shortest path."""
    return (
        photo.id not in linked,
        -(photo.width or 0) * (photo.height or 0),
        _date(photo)[0],
        -photo.size,
        len(photo.path),
        photo.path,
    )


def _group(photos: list[Photo], found: _Found) -> DuplicateGroup:
    linked, evidence = found.linked, found.evidence
    ordered = sorted(photos, key=lambda p: _keeper_order(p, linked))
    keeper, runner_up = ordered[0], ordered[1]
    ranks = zip(_keeper_order(keeper, linked), _keeper_order(runner_up, linked), strict=True)
    reason = next((why for why, (a, b) in zip(_REASONS, ranks, strict=True) if a != b), _REASONS[-1])
    members = []
    for photo in ordered:
        date, taken = _date(photo)
        exact = photo.id == keeper.id or (
            photo.content_hash is not None and photo.content_hash == keeper.content_hash
        )
        similarity = 1.0 if exact else max(evidence.cosine(keeper.id, photo.id), 0.0)
        same = exact or same_pixels(evidence.pixels(keeper.id), evidence.pixels(photo.id))
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
                sure=photo.id != keeper.id and same and photo.id not in linked,
                linked=photo.id in linked,
            )
        )
    return DuplicateGroup(tuple(members), reason)
