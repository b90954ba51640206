"""The 1000 ImageNet-1k classes, in the output order of ImageNet classifiers (sorted synsets)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CLASSES_FILE = Path(__file__).with_name("imagenet_classes.tsv")
_FILENAME = re.compile(r"^(n\d{8})_(.+)\.(?:jpe?g|png)$", re.IGNORECASE)

# Names shared by two synsets in the file names; each gets an unambiguous name.
DISAMBIGUATED = {
    "n02012849": "crane bird",  # crane, the bird
    "n03126707": "construction crane",  # crane, the lifting machine
    "n03710637": "maillot",  # maillot (WordNet: tights; in the photos mostly a swimsuit)
    "n03710721": "tank suit",  # maillot, tank suit: a woman's one-piece bathing suit
}


@dataclass(frozen=True)
class ImageNetClass:
    index: int  # classifier output index
    synset: str  # WordNet id, e.g. n01440764
    name: str  # e.g. "tench"


@cache
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    """The vendored class list (``synset<TAB>name`` per line, sorted by synset)."""
    rows = [line.split("\t") for line in CLASSES_FILE.read_text(encoding="utf-8").splitlines() if line]
    return tuple(ImageNetClass(i, synset, name) for i, (synset, name) in enumerate(rows))


def parse_filename(name: str) -> tuple[str, str] | None:
    """``n01440764_tench.JPEG`` -> ("n01440764", "tench"); underscores stand for spaces."""
    match = _FILENAME.match(name)
    if match is None:
        return None
    return match.group(1), match.group(2).replace("_", " ")


def classes_from_filenames(names: list[str]) -> list[tuple[str, str]]:
    """(synset, name) pairs read off ImageNet file names, sorted by synset, duplicates disambiguated."""
    pairs = dict(p for p in map(parse_filename, names) if p is not None)
    return [(synset, DISAMBIGUATED.get(synset, pairs[synset])) for synset in sorted(pairs)]
