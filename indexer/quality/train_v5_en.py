"""v5's English route: a linear map from v4.2's text vector into v5's joint space.

v5's image vector is ``normalize(V x)``, ``x`` v4.2's image vector and ``V`` the shipped
``v42_visual_map`` (locked here, so v5's image vectors stay bit-identical). An English query takes
v4.2's text side (all-MiniLM-L6-v2 with v4.2's trained layers and projection) and then ``E``
(384 → 512), learned here. ``E`` starts at ``V (VᵀV)⁻¹``, which makes ``<E t, V x> = <t, x>``: the
score of v4.2 up to each photo's ``1 / |V x|``; training removes what that factor costs. Loss: the
symmetric InfoNCE on ``flickr8k-train`` English captions, the same loss on the class prompts
(v4.2's prompt vector, mapped by ``V``, standing in for a photo of the class: zero-shot), a KL toward
v4.2's own class distribution on the batch's photos, and weight decay toward the start. Early
stopping on the same seeded 20 % held-out split as v5's recipe, keeping only states whose held-out
zero-shot top-1 is at least the start's. No flickr8k-1k photo and no Multi30k text is seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from indexer.quality.metrics import retrieval_metrics
from indexer.quality.train import captions_of, mean_recall, split_images
from indexer.quality.train_distill import ZeroShotCheck
from indexer.quality.train_v5 import info_nce


@dataclass(frozen=True)
class EnglishRecipe:
    """Hyper-parameters, chosen on the held-out split of flickr8k-train only."""

    steps: int = 1500
    batch_size: int = 256
    lr: float = 3e-4
    anchor_weight: float = 1.0
    distill: float = 1.0
    distill_scale: float = 50.0
    init_decay: float = 0.01
    norm_weight: float = 0.0  # weight of the variance of log |E a| over the class prompts (zero-shot)
    val_fraction: float = 0.2
    eval_every: int = 100
    patience: int = 5
    seed: int = 0


@dataclass
class EnglishFeatures:
    """v4.2's L2-normalised vectors (float32) and v5's locked visual map."""

    images: np.ndarray  # (n_images, 384)
    captions: np.ndarray  # (n_captions, 384)
    caption_image: np.ndarray  # (n_captions,)
    caption_texts: list[str]
    anchors: np.ndarray  # (1000, 384): the class prompts
    visual_map: np.ndarray  # (512, 384): V


def pseudo_inverse_start(visual_map: np.ndarray) -> np.ndarray:
    """``V (VᵀV)⁻¹``: the English map under which v5's score is v4.2's divided by ``|V x|``."""
    v = visual_map.astype(np.float64)
    return (v @ np.linalg.inv(v.T @ v)).astype(np.float32)


class EnglishHead(nn.Module):
    """``normalize(E t)`` for v4.2 text vectors, ``normalize(V x)`` (locked) for v4.2 image vectors."""

    visual: torch.Tensor
    start: torch.Tensor

    def __init__(self, visual_map: np.ndarray, start: np.ndarray, logit_scale: float) -> None:
        super().__init__()
        self.english = nn.Parameter(torch.from_numpy(start).clone())
        self.register_buffer("visual", torch.from_numpy(visual_map).clone())
        self.register_buffer("start", torch.from_numpy(start).clone())
        self.scale = float(logit_scale)

    def image_embeds(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x @ self.visual.T, dim=-1)

    def text_embeds(self, t: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(t @ self.english.T, dim=-1)

    def penalty(self) -> torch.Tensor:
        return (self.english - self.start).pow(2).sum() / self.start.pow(2).sum()


@dataclass
class EnglishValidation:
    step: int
    score: float
    text_to_image: tuple[float, float, float]
    zero_shot_top1: float
    agreement: float  # % of held-out photos whose top class (of the 1000 prompts) is v4.2's


class EnglishTrainer:
    def __init__(self, feats: EnglishFeatures, recipe: EnglishRecipe, logit_scale: float) -> None:
        torch.manual_seed(recipe.seed)
        self.r = recipe
        self.rng = np.random.default_rng(recipe.seed)
        self.img = torch.from_numpy(feats.images)
        self.cap = torch.from_numpy(feats.captions)
        self.anchors = torch.from_numpy(feats.anchors)
        self.train_idx, self.val_idx = split_images(len(feats.images), recipe.val_fraction, recipe.seed)
        self.val_caps, self.val_targets = captions_of(feats.caption_image, self.val_idx)
        self.caps_by_image = [np.flatnonzero(feats.caption_image == i) for i in range(len(feats.images))]
        self.check = ZeroShotCheck.for_images(
            self.anchors, feats.caption_texts, feats.caption_image, self.val_idx
        )
        start = pseudo_inverse_start(feats.visual_map)
        self.head = EnglishHead(feats.visual_map, start, logit_scale)
        self.opt = torch.optim.AdamW([self.head.english], lr=recipe.lr, weight_decay=0.0)
        with torch.no_grad():
            self.teacher = nn.functional.log_softmax(recipe.distill_scale * self.img @ self.anchors.T, dim=-1)
            self.class_images = self.head.image_embeds(self.anchors)

    def step(self) -> float:
        r, h = self.r, self.head
        images = self.rng.choice(self.train_idx, size=r.batch_size, replace=False)
        caps = np.array([self.rng.choice(self.caps_by_image[i]) for i in images])
        img = h.image_embeds(self.img[images])
        loss = info_nce(h.scale * h.text_embeds(self.cap[caps]) @ img.T)
        classes = h.text_embeds(self.anchors)
        anchor = info_nce(h.scale * classes @ self.class_images.T)
        student = nn.functional.log_softmax(r.distill_scale * img @ classes.T, dim=-1)
        kl = nn.functional.kl_div(student, self.teacher[images], log_target=True, reduction="batchmean")
        total = loss + r.anchor_weight * anchor + r.distill * kl + r.init_decay * h.penalty()
        if (
            r.norm_weight > 0
        ):  # a class's score is <a, x> / |E a| near the start: equal norms keep v4.2's top class
            total = total + r.norm_weight * (self.anchors @ h.english.T).norm(dim=-1).log().var()
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        return float(loss.detach())

    @torch.no_grad()
    def validate(self, step: int) -> EnglishValidation:
        h = self.head
        img = h.image_embeds(self.img[torch.from_numpy(self.val_idx)])
        txt = h.text_embeds(self.cap[torch.from_numpy(self.val_caps)])
        m = retrieval_metrics((txt @ img.T).numpy(), self.val_targets)
        zs = self.check.accuracy(h, self.img)  # type: ignore[arg-type]  # same image/text_embeds API
        t = m.text_to_image
        ours = (img @ h.text_embeds(self.anchors).T).argmax(dim=-1)
        v42 = self.teacher[torch.from_numpy(self.val_idx)].argmax(dim=-1)
        agreement = float((ours == v42).float().mean()) * 100
        return EnglishValidation(
            step, mean_recall(m), (t.recall_at_1, t.recall_at_5, t.recall_at_10), zs[0], agreement
        )

    def fit(self, log: list[str] | None = None) -> tuple[EnglishValidation, EnglishValidation]:
        """Train with early stopping; (start, best accepted) on the held-out split, the best state
        left in ``self.head``."""
        before = best = self.validate(0)
        state = self.head.english.detach().clone()
        bad = 0
        for step in range(1, self.r.steps + 1):
            loss = self.step()
            if step % self.r.eval_every:
                continue
            v = self.validate(step)
            if log is not None:
                log.append(f"step {step} loss {loss:.3f} val {v}")
            if v.score > best.score and v.zero_shot_top1 >= before.zero_shot_top1:
                best, bad, state = v, 0, self.head.english.detach().clone()
            else:
                bad += 1
                if bad >= self.r.patience:
                    break
        with torch.no_grad():
            self.head.english.copy_(state)
        return before, best


def save_english_head(english: np.ndarray, path: Path, vision: str = "efficientnet-lite2") -> None:
    """The route's head as the build reads it (default_model.english_route): ``english_map``
    (dim x 384, float32), applied to v4.2's text vector."""
    from safetensors.numpy import save_file

    save_file({"english_map": np.ascontiguousarray(english, dtype=np.float32)}, str(path), {"vision": vision})
    path.chmod(0o644)


def load_english_features(datasets: Path, data_dir: Path) -> EnglishFeatures:
    """flickr8k-train's v4.2 vectors (through the evaluation cache) and v5's shipped visual map."""
    from safetensors.numpy import load_file

    from indexer.core.models.default_spec import V5_SPEC, head_path
    from indexer.quality.data import load_caption_dataset
    from indexer.quality.train_distill import anchor_prompts
    from indexer.quality.train_v5_data import v42_vectors

    train = datasets / "flickr8k-train"
    data = load_caption_dataset(train / "images", train / "captions.csv")
    cache = data_dir / "cache" / "eval"
    return EnglishFeatures(
        images=v42_vectors("image", data.images, cache),
        captions=v42_vectors("text", data.captions, cache),
        caption_image=np.asarray(data.caption_image),
        caption_texts=list(data.captions),
        anchors=v42_vectors("text", anchor_prompts(), cache),
        visual_map=load_file(str(head_path(V5_SPEC.head)))["v42_visual_map"],
    )


def train_english_head(datasets: Path, data_dir: Path, out: Path, recipe: EnglishRecipe | None = None) -> str:
    """Train the English route's map on flickr8k-train and save it to ``out``; a summary line."""
    from safetensors.numpy import load_file

    from indexer.core.models.default_spec import V5_SPEC, head_path

    torch.set_num_threads(1)  # small matrices: more threads only contend on a shared machine
    log_scale = float(load_file(str(head_path(V5_SPEC.head)))["logit_scale"])
    trainer = EnglishTrainer(
        load_english_features(datasets, data_dir), recipe or EnglishRecipe(), math.exp(log_scale)
    )
    before, best = trainer.fit()
    save_english_head(trainer.head.english.detach().numpy(), out)
    return f"held-out: start {before}; saved {best}"


if __name__ == "__main__":  # python -m indexer.quality.train_v5_en [DATASETS]
    import sys

    from indexer.core.models.default_spec import V5_SPEC, head_path
    from indexer.core.settings import resolve_data_dir

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/datasets")
    print(train_english_head(root, resolve_data_dir(None), head_path(V5_SPEC.english)))
