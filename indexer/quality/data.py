"""Evaluation / training data sets: captioned images (image,caption) and labelled images (image,label)."""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.core.errors import NotFoundError, UsageError
from indexer.core.imaging import is_image_name

_WNID = re.compile(r"^n\d{8}[_ -]+")


@dataclass(frozen=True)
class CaptionDataset:
    """Images with one or more captions each; ``caption_image[c]`` indexes ``images``."""

    images: tuple[Path, ...]
    captions: tuple[str, ...]
    caption_image: np.ndarray  # (n_captions,) int64

    def subset(self, image_indices: np.ndarray) -> CaptionDataset:
        """The images at ``image_indices`` (in that order) with all their captions."""
        keep = np.asarray(image_indices, dtype=np.int64)
        remap = np.full(len(self.images), -1, dtype=np.int64)
        remap[keep] = np.arange(keep.size)
        selected = np.flatnonzero(remap[self.caption_image] >= 0)
        return CaptionDataset(
            images=tuple(self.images[i] for i in keep),
            captions=tuple(self.captions[c] for c in selected),
            caption_image=remap[self.caption_image[selected]],
        )


@dataclass(frozen=True)
class LabelDataset:
    """Images each labelled with one class; ``labels[i]`` indexes ``classes``."""

    images: tuple[Path, ...]
    labels: np.ndarray  # (n_images,) int64
    classes: tuple[str, ...]


def _read_rows(csv_path: Path, columns: tuple[str, str]) -> list[tuple[str, str]]:
    if not csv_path.is_file():
        raise NotFoundError(f"CSV file not found: {csv_path}")
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if not all(c in header for c in columns):
            raise UsageError(f"{csv_path} must have columns {','.join(columns)} (found: {','.join(header)})")
        reader.fieldnames = header
        rows = []
        for row in reader:
            a, b = ((row.get(c) or "").strip() for c in columns)
            if a and b:
                rows.append((a, b))
    if not rows:
        raise UsageError(f"{csv_path} has no rows with both {columns[0]} and {columns[1]}")
    return rows


def _resolve_images(images_dir: Path, names: list[str]) -> dict[str, Path]:
    if not images_dir.is_dir():
        raise NotFoundError(f"image directory not found: {images_dir}")
    resolved: dict[str, Path] = {}
    missing = []
    for name in dict.fromkeys(names):
        path = (images_dir / name).resolve()
        if path.is_file():
            resolved[name] = path
        else:
            missing.append(name)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise NotFoundError(f"image listed in the CSV not found under {images_dir}: {missing[0]}{more}")
    return resolved


def load_caption_dataset(
    images_dir: str | os.PathLike[str], captions_csv: str | os.PathLike[str]
) -> CaptionDataset:
    """Read ``image,caption`` rows (paths relative to ``images_dir``); several captions per image allowed."""
    root = Path(images_dir)
    rows = _read_rows(Path(captions_csv), ("image", "caption"))
    paths = _resolve_images(root, [r[0] for r in rows])
    order = list(dict.fromkeys(r[0] for r in rows))
    index = {name: i for i, name in enumerate(order)}
    return CaptionDataset(
        images=tuple(paths[name] for name in order),
        captions=tuple(r[1] for r in rows),
        caption_image=np.array([index[r[0]] for r in rows], dtype=np.int64),
    )


def _label_dataset(images: list[Path], labels: list[str]) -> LabelDataset:
    classes = tuple(sorted(set(labels)))
    index = {c: i for i, c in enumerate(classes)}
    return LabelDataset(
        images=tuple(images), labels=np.array([index[x] for x in labels], dtype=np.int64), classes=classes
    )


def load_label_dataset(
    images_dir: str | os.PathLike[str], labels_csv: str | os.PathLike[str]
) -> LabelDataset:
    """Read ``image,label`` rows; the class list is the sorted set of labels."""
    rows = _read_rows(Path(labels_csv), ("image", "label"))
    seen: dict[str, str] = {}
    for name, label in rows:
        seen.setdefault(name, label)
    paths = _resolve_images(Path(images_dir), list(seen))
    return _label_dataset([paths[n] for n in seen], list(seen.values()))


def label_from_filename(name: str) -> str:
    """``n01440764_tench.JPEG`` -> ``tench``; ``great_white_shark.jpg`` -> ``great white shark``."""
    stem = Path(name).stem
    stem = _WNID.sub("", stem)
    return re.sub(r"[_]+", " ", stem).strip()


def list_images(images_dir: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside ``images_dir``, sorted by name."""
    root = Path(images_dir)
    if not root.is_dir():
        raise NotFoundError(f"image directory not found: {root}")
    return sorted(p.resolve() for p in root.iterdir() if p.is_file() and is_image_name(p.name))


def labels_from_filenames(images_dir: str | os.PathLike[str]) -> LabelDataset:
    """Label every image in ``images_dir`` by its file name (imagenet-sample style).

    With WordNet-id prefixes the class is the synset, so two synsets sharing a name (ImageNet's two
    "crane"s and two "maillot"s) stay two classes, named as the model layer names them.
    """
    from indexer.core.models.imagenet import classes_from_filenames, parse_filename

    images = list_images(images_dir)
    if not images:
        raise UsageError(f"no images found in {images_dir}")
    parsed = [parse_filename(p.name) for p in images]
    if all(p is not None for p in parsed):
        names = dict(classes_from_filenames([p.name for p in images]))
        labels = [names[p[0]] for p in parsed if p is not None]
        if len(set(labels)) == len(names):
            return _label_dataset(images, labels)
    labels = [label_from_filename(p.name) for p in images]
    if any(not label for label in labels):
        raise UsageError(f"cannot derive a label from every file name in {images_dir}")
    return _label_dataset(images, labels)
