"""Keeping zero-shot classification while LiT training.

The contrastive loss on captions says nothing about class-name prompts, and a head that learns
from the image tower's pooled features can stop ranking "a photo of a goldfish." first for a
goldfish (measured in docs/quality.md). Two tools, both on the 1000 ImageNet class prompts:

* **A check on held-out photos** (:class:`ZeroShotCheck`): the validation photos whose own
  captions name an ImageNet class ("a boy kicks a *soccer ball*") are a zero-shot classification
  set with human labels. Validation reports top-1/top-5 on it, and ``--keep-zero-shot`` accepts
  a state only when both are at least the base model's: the recipe is chosen on the training
  pool, never on a test set.
* **Distillation** (``--distill W``, :class:`ZeroShotTeacher`): ``W`` times the KL divergence from
  the base model's distribution over the class prompts to the trained model's, on each batch's
  training photos ("learning without forgetting"); validation reports how often the top class
  agrees with the base model's.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from indexer.core.models.imagenet import DISAMBIGUATED, imagenet_classes
from indexer.quality.train_head import LiTHead

ANCHOR_TEMPLATE = "a photo of a {}."
DISTILL_SCALE = 50.0  # a fixed softmax scale on cosines for teacher and student alike
CHUNK = 2048
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def class_names() -> list[str]:
    return [DISAMBIGUATED.get(c.synset, c.name) for c in imagenet_classes()]


def anchor_prompts() -> list[str]:
    """One prompt per ImageNet class: the anchors whose ranking the trained model must keep."""
    return [ANCHOR_TEMPLATE.format(name) for name in class_names()]


@functools.cache
def _name_lookup(names: tuple[str, ...]) -> tuple[dict[tuple[str, ...], int], int]:
    lookup: dict[tuple[str, ...], int] = {}
    for i, name in enumerate(names):
        words = tuple(_WORD.findall(name.lower()))
        if words:
            lookup.setdefault(words, i)
            lookup.setdefault((*words[:-1], words[-1] + "s"), i)
    return lookup, max((len(k) for k in lookup), default=0)


def classes_named(text: str, names: Sequence[str]) -> set[int]:
    """Indices of the class names that occur in ``text`` as whole words (a plural ``s`` allowed)."""
    lookup, longest = _name_lookup(tuple(names))
    words = _WORD.findall(text.lower())
    found = set()
    for start in range(len(words)):
        for n in range(1, longest + 1):
            hit = lookup.get(tuple(words[start : start + n]))
            if hit is not None:
                found.add(hit)
    return found


class ZeroShotCheck:
    """Zero-shot top-1/top-5 over the class prompts, on photos labelled by the classes their captions name."""

    def __init__(self, anchors: torch.Tensor, labels: list[set[int]], images: np.ndarray) -> None:
        self.anchors = anchors  # (n_classes, text_dim) pooled text features of anchor_prompts()
        keep = [i for i, found in enumerate(labels) if found]
        self.images = images[keep]  # image ids (into the training data) with at least one named class
        self.labels = [labels[i] for i in keep]

    @classmethod
    def for_images(
        cls, anchors: torch.Tensor, captions: Sequence[str], caption_image: np.ndarray, images: np.ndarray
    ) -> ZeroShotCheck:
        names = class_names()
        labels = [
            set().union(*(classes_named(captions[int(c)], names) for c in np.flatnonzero(caption_image == i)))
            for i in images
        ]
        return cls(anchors, labels, images)

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def accuracy(self, head: LiTHead, image_feats: torch.Tensor) -> tuple[float, float]:
        """(top-1, top-5) in percent: a hit when a predicted class is one the captions name."""
        if not len(self):
            return 0.0, 0.0
        feats = image_feats[torch.from_numpy(self.images).to(image_feats.device)]
        top5 = (head.image_embeds(feats) @ head.text_embeds(self.anchors).T).topk(5, dim=-1).indices.tolist()
        pairs = list(zip(top5, self.labels, strict=True))
        top1 = np.mean([ranked[0] in named for ranked, named in pairs])
        any5 = np.mean([bool(named.intersection(ranked)) for ranked, named in pairs])
        return float(top1) * 100.0, float(any5) * 100.0


class ZeroShotTeacher:
    """The base model's class distribution for every training image, and the KL toward it."""

    def __init__(self, head: LiTHead, anchors: torch.Tensor, image_feats: torch.Tensor) -> None:
        self.anchors = anchors
        with torch.no_grad():
            classes = head.text_embeds(anchors)
            chunks = [
                DISTILL_SCALE * head.image_embeds(image_feats[s : s + CHUNK]) @ classes.T
                for s in range(0, len(image_feats), CHUNK)
            ]
            self.log_probs = nn.functional.log_softmax(torch.cat(chunks), dim=-1)  # (n_images, n_classes)
        self.top = self.log_probs.argmax(dim=-1)

    def student_logits(self, head: LiTHead, image_embeds: torch.Tensor) -> torch.Tensor:
        return DISTILL_SCALE * image_embeds @ head.text_embeds(self.anchors).T

    def loss(self, head: LiTHead, images: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        """KL(teacher ‖ student), averaged over the batch's images (``image_embeds``: the trained
        head's embeddings of ``images``, as the contrastive loss already computed them)."""
        student = nn.functional.log_softmax(self.student_logits(head, image_embeds), dim=-1)
        return nn.functional.kl_div(student, self.log_probs[images], log_target=True, reduction="batchmean")

    @torch.no_grad()
    def agreement(self, head: LiTHead, images: torch.Tensor, image_embeds: torch.Tensor) -> float:
        """Percentage of ``images`` whose top class the trained model shares with the base model."""
        if len(images) == 0:
            return 100.0
        top = self.student_logits(head, image_embeds).argmax(dim=-1)
        return float((top == self.top[images]).float().mean()) * 100.0
