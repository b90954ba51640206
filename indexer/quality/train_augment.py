"""Training-time augmentation for LiT: prompt-style captions and aspect-ratio views of the photos.

Both are precomputed, like the locked towers' features, so a step stays two matrix products:

* **Prompt-style captions** (``--caption-prompts P``): each training caption gets one fixed
  prompt-style twin ("A dog runs ." → "a photo of a dog runs."), its template drawn once per
  caption from :data:`PROMPT_TEMPLATES` by the run's seed; a step uses the twin with probability P.
  Queries and class prompts are phrased that way ("a photo of a goldfish."), captions are not.
* **Aspect views** (``--aspect-views N``): training sets that were resized to a square (like
  flickr8k-train, "squashed from the originals, not cropped") teach a head pixels no indexed
  photo has. View k stretches each training photo back to :data:`ASPECT_FACTORS`\\[k] (4:3, then
  3:4) before the model's usual resize and centre crop — what the indexer does with a real
  landscape or portrait photo; a step picks the square or one view per photo at random.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer.quality.train_config import ASPECT_FACTORS
from indexer.quality.train_features import BaseModel, image_features

PROMPT_TEMPLATES = ("a photo of {}.", "a picture of {}.", "an image of {}.")


def prompt_style(caption: str, template: str) -> str:
    """``caption`` inside ``template``: trailing full stops dropped, a leading capital lowered
    unless the first word is an acronym ("A dog ." → "a dog"; "UK flag" stays)."""
    text = caption.strip().rstrip(" .")
    first = text.split(" ", 1)[0]
    acronym = len(first) > 1 and first.isupper()
    if not acronym and first != "I":
        text = text[:1].lower() + text[1:]
    return template.format(text)


def prompt_twins(captions: Sequence[str], seed: int) -> list[str]:
    """One prompt-style twin per caption, its template drawn with ``seed``."""
    picks = np.random.default_rng(seed).integers(0, len(PROMPT_TEMPLATES), len(captions))
    return [prompt_style(c, PROMPT_TEMPLATES[k]) for c, k in zip(captions, picks, strict=True)]


def aspect_views(
    base: BaseModel, paths: Sequence[Path], n: int, cache_dir: Path | None, progress: bool = False
) -> list[np.ndarray]:
    """The first ``n`` aspect views (:data:`ASPECT_FACTORS`) of ``paths``."""
    return [image_features(base, paths, cache_dir, progress, aspect=f) for f in ASPECT_FACTORS[:n]]
