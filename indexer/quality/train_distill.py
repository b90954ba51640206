"""Keeping zero-shot classification while LiT training: distil the base model's class predictions.

The contrastive loss on captions says nothing about class-name prompts, and a head that learns
from the image tower's pooled features stops ranking "a photo of a goldfish." first for a goldfish
(measured in docs/quality.md). ``--distill W`` adds ``W`` times the KL divergence from the base
model's distribution over the 1000 ImageNet class prompts to the trained model's, on each batch's
training photos ("learning without forgetting"): the base model is the teacher, computed once.
Validation also reports how often the trained model's top class is the base model's on the
held-out photos, the zero-shot proxy a recipe is chosen on (never a test set).
"""

from __future__ import annotations

import torch
from torch import nn

from indexer.core.models.imagenet import DISAMBIGUATED, imagenet_classes
from indexer.quality.train_head import LiTHead

ANCHOR_TEMPLATE = "a photo of a {}."
DISTILL_SCALE = 50.0  # a fixed softmax scale on cosines for teacher and student alike
CHUNK = 2048


def anchor_prompts() -> list[str]:
    """One prompt per ImageNet class: the anchors whose ranking the trained model must keep."""
    return [ANCHOR_TEMPLATE.format(DISAMBIGUATED.get(c.synset, c.name)) for c in imagenet_classes()]


class ZeroShotTeacher:
    """The base model's class distribution for every training image, and the KL toward it."""

    def __init__(self, head: LiTHead, anchors: torch.Tensor, image_feats: torch.Tensor) -> None:
        self.anchors = anchors  # (n_classes, text_dim) pooled text features of anchor_prompts()
        with torch.no_grad():
            classes = head.text_embeds(anchors)
            chunks = [
                DISTILL_SCALE * head.image_embeds(image_feats[s : s + CHUNK]) @ classes.T
                for s in range(0, len(image_feats), CHUNK)
            ]
            self.log_probs = nn.functional.log_softmax(torch.cat(chunks), dim=-1)  # (n_images, n_classes)
        self.top = self.log_probs.argmax(dim=-1)

    def student_logits(self, head: LiTHead, image_feats: torch.Tensor) -> torch.Tensor:
        return DISTILL_SCALE * head.image_embeds(image_feats) @ head.text_embeds(self.anchors).T

    def loss(self, head: LiTHead, images: torch.Tensor, image_feats: torch.Tensor) -> torch.Tensor:
        """KL(teacher ‖ student), averaged over the batch's images."""
        student = nn.functional.log_softmax(self.student_logits(head, image_feats), dim=-1)
        return nn.functional.kl_div(student, self.log_probs[images], log_target=True, reduction="batchmean")

    @torch.no_grad()
    def agreement(self, head: LiTHead, images: torch.Tensor, image_feats: torch.Tensor) -> float:
        """Percentage of ``images`` whose top class the trained model shares with the base model."""
        if len(images) == 0:
            return 100.0
        top = self.student_logits(head, image_feats).argmax(dim=-1)
        return float((top == self.top[images]).float().mean()) * 100.0
