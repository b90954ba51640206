"""Zero-shot classification as in the CLIP paper: one prompt per label, the model's own scale."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from indexer.core.errors import UsageError
from indexer.core.models import DualEncoder
from search.scoring import ScoreModel

PROMPT = "a photo of a {label}."
MAX_LABELS = 1000


def clean_labels(labels: Sequence[str] | str) -> list[str]:
    """Labels stripped, empty ones dropped, duplicates removed (first kept); comma-separated text ok."""
    raw = labels.split(",") if isinstance(labels, str) else list(labels)
    out: list[str] = []
    for label in raw:
        if not isinstance(label, str):
            raise UsageError(f"a label must be text, not {label!r}")
        text = " ".join(label.split())
        if text and text not in out:
            out.append(text)
    if not out:
        raise UsageError('give at least one label, e.g. --labels "cat,dog,car"')
    if len(out) > MAX_LABELS:
        raise UsageError(f"at most {MAX_LABELS} labels, got {len(out)}")
    return out


def classify_vector(
    image_vector: np.ndarray, label_vectors: np.ndarray, labels: Sequence[str], scores: ScoreModel
) -> list[tuple[str, float]]:
    """(label, probability) sorted by probability, highest first (ties keep the label order)."""
    cosines = np.asarray(label_vectors, dtype=np.float32) @ np.asarray(image_vector, dtype=np.float32)
    probs = scores.probabilities(cosines)
    order = sorted(range(len(labels)), key=lambda i: -float(probs[i]))
    return [(labels[i], float(probs[i])) for i in order]


def classify_image(
    encoder: DualEncoder, image: Image.Image, labels: Sequence[str] | str
) -> list[tuple[str, float]]:
    """Zero-shot classification of a PIL image with a bare encoder (no collection needed)."""
    names = clean_labels(labels)
    image_vector = encoder.embed_images([image])[0]
    label_vectors = encoder.embed_texts([PROMPT.format(label=n) for n in names])
    return classify_vector(image_vector, label_vectors, names, ScoreModel.from_encoder(encoder))
