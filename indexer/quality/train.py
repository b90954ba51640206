"""LiT training (locked image tower) of a dual encoder on captioned photos: ``dualens train``.

The image tower never changes, so its features are computed once (and cached on disk); so are
the text tower's unless top text layers are unlocked. Each step then costs two small matrix
products: an epoch over a thousand photos takes well under a second on a CPU. A held-out
validation split (by image, seeded) is scored before training and after every epoch; training
stops when it has not improved for ``patience`` validations, and the best state is saved — the
base model itself when training never beat it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from tqdm import tqdm

from indexer.core.errors import UsageError
from indexer.core.settings import resolve_data_dir
from indexer.quality.data import CaptionDataset, load_caption_dataset
from indexer.quality.metrics import RetrievalMetrics, retrieval_metrics
from indexer.quality.train_augment import aspect_views, prompt_twins
from indexer.quality.train_config import TrainConfig
from indexer.quality.train_distill import ZeroShotCheck, ZeroShotTeacher, anchor_prompts
from indexer.quality.train_features import BaseModel, image_features, load_base, text_features
from indexer.quality.train_head import InitialWeightPenalty, LiTHead, contrastive_loss, unlock_top_text_layers
from indexer.quality.train_save import META_NAME, save_trained

log = logging.getLogger(__name__)

LOG_NAME = "train_log.jsonl"


def train_cache_dir(data: Path | str | None = None) -> Path:
    return resolve_data_dir(data) / "cache" / "train"


def mean_recall(m: RetrievalMetrics) -> float:
    """The early-stopping score: mean of recall@1/5/10 in both directions."""
    parts = [m.text_to_image, m.image_to_text]
    return float(np.mean([x for d in parts for x in (d.recall_at_1, d.recall_at_5, d.recall_at_10)]))


def split_images(n_images: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) image indices; validation gets round(n * fraction) images."""
    order = np.random.default_rng(seed).permutation(n_images)
    n_val = min(n_images - 2, round(n_images * val_fraction)) if val_fraction > 0 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def captions_of(caption_image: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Caption ids belonging to ``images``, and for each the position of its image within ``images``."""
    position = np.full(int(caption_image.max()) + 1, -1, dtype=np.int64)
    position[images] = np.arange(len(images))
    ids = np.flatnonzero(position[caption_image] >= 0)
    return ids, position[caption_image[ids]]


@dataclass
class Validation:
    step: int
    epoch: float
    score: float
    metrics: RetrievalMetrics
    agreement: float | None = None  # % of held-out photos whose top ImageNet class is the base model's
    zero_shot: tuple[float, float] | None = None  # top-1/5 on held-out photos captioned with a class name


@dataclass
class TrainResult:
    out: Path
    steps: int
    best: Validation | None
    before: Validation | None
    stopped_early: bool
    log_file: Path
    history: list[Validation] = field(default_factory=list)
    kept_last: bool = False
    wise: Validation | None = None  # the saved weight-space ensemble (--wise-ft), validated
    wise_rejected: bool = False  # it failed --keep-zero-shot's check: the trained state was saved instead

    def summary(self) -> str:
        early = " (early stop)" if self.stopped_early else ""
        early += "; saved the LAST state (--keep-last)" if self.kept_last else ""
        lines = [f"saved {self.out} after {self.steps} steps{early}"]
        if self.before is not None and self.best is not None:
            rows = [("before", self.before), (f"best (step {self.best.step})", self.best)]
            if self.wise is not None:
                rows.append(("WiSE-FT" + (" REJECTED" if self.wise_rejected else ""), self.wise))
            for name, v in rows:
                t, i = v.metrics.text_to_image, v.metrics.image_to_text
                agree = f"  zero-shot agreement {v.agreement:5.1f}%" if v.agreement is not None else ""
                if v.zero_shot is not None:
                    agree += f"  zero-shot top-1/5 {v.zero_shot[0]:5.1f} {v.zero_shot[1]:5.1f}"
                lines.append(
                    f"validation {name:>17}: text→image R@1/5/10 {t.recall_at_1:5.1f} {t.recall_at_5:5.1f} "
                    f"{t.recall_at_10:5.1f}  image→text {i.recall_at_1:5.1f} {i.recall_at_5:5.1f} "
                    f"{i.recall_at_10:5.1f}  mean {v.score:5.2f}{agree}"
                )
        lines.append(f"log: {self.log_file}")
        return "\n".join(lines)


class _Trainer:
    def __init__(self, config: TrainConfig, base: BaseModel, dataset: CaptionDataset, progress: bool) -> None:
        self.config, self.base, self.data, self.progress = config, base, dataset, progress
        self.rng = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed)
        cache = train_cache_dir(config.data)
        feats = image_features(base, dataset.images, cache, progress)
        self.image_feats = torch.from_numpy(feats).to(base.device)
        self.train_idx, self.val_idx = split_images(len(dataset.images), config.val_fraction, config.seed)
        self.views = self._aspect_views(cache)
        self.text_locked = config.unlock_text_layers == 0
        self.text_feats = (
            torch.from_numpy(text_features(base, dataset.captions, cache, progress)).to(base.device)
            if self.text_locked
            else None
        )
        self.twins = prompt_twins(dataset.captions, config.seed) if config.caption_prompts > 0 else []
        train_caps, _ = captions_of(dataset.caption_image, self.train_idx)  # held-out ones are never twinned
        self.twin_row = np.full(len(dataset.captions), -1, dtype=np.int64)  # caption id -> row of twin_feats
        self.twin_row[train_caps] = np.arange(len(train_caps))
        self.twin_feats = (
            torch.from_numpy(text_features(base, [self.twins[c] for c in train_caps], cache, progress)).to(
                base.device
            )
            if self.twins and self.text_locked
            else None
        )
        model = base.model
        self.head = LiTHead(
            model.visual_projection,
            model.text_projection,
            float(model.logit_scale.detach().float().reshape(-1)[0]),
            rank=config.rank,
            train_scale=config.train_logit_scale,
            image_scale=feature_scale(model, config.feature_scale),
        ).to(base.device)
        self.text_params = unlock_top_text_layers(model.text_model, config.unlock_text_layers)
        self.text_penalty = InitialWeightPenalty(self.text_params)
        groups: list[dict[str, Any]] = [
            {"params": [p for p in self.head.parameters() if p.requires_grad], "lr": config.lr}
        ]
        if self.text_params:
            groups.append({"params": self.text_params, "lr": config.text_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
        self.teacher: ZeroShotTeacher | None = None
        self.zero_shot: ZeroShotCheck | None = None
        if config.distill > 0 or len(self.val_idx):
            anchors = torch.from_numpy(text_features(base, anchor_prompts(), cache, progress)).to(base.device)
            if config.distill > 0:
                self.teacher = ZeroShotTeacher(self.head, anchors, self.image_feats)
            check = ZeroShotCheck.for_images(anchors, dataset.captions, dataset.caption_image, self.val_idx)
            self.zero_shot = check if len(check) else None
        if config.keep_zero_shot and self.zero_shot is None:
            raise UsageError("--keep-zero-shot: no held-out photo's caption names an ImageNet class")
        self.val_caps, self.val_targets = captions_of(dataset.caption_image, self.val_idx)
        self.caps_by_image = [np.flatnonzero(dataset.caption_image == i) for i in range(len(dataset.images))]

    # ---------------------------------------------------------------------------------- data
    def _aspect_views(self, cache: Path) -> torch.Tensor | None:
        """(1 + N, n_images, dim): the photos as given, then N stretched views of the training ones."""
        if self.config.aspect_views == 0:
            return None
        paths = [self.data.images[i] for i in self.train_idx]
        views = [self.image_feats]
        for feats in aspect_views(self.base, paths, self.config.aspect_views, cache, self.progress):
            view = self.image_feats.clone()  # held-out photos keep their one view
            view[torch.from_numpy(self.train_idx).to(view.device)] = torch.from_numpy(feats).to(view.device)
            views.append(view)
        return torch.stack(views)

    def training_images(self, ids: torch.Tensor) -> torch.Tensor:
        """Pooled image features for a step: one view per photo, drawn at random when there are views."""
        if self.views is None:
            return self.image_feats[ids]
        pick = torch.from_numpy(self.rng.integers(0, len(self.views), len(ids))).to(ids.device)
        return self.views[pick, ids]

    def training_texts(self, caps: np.ndarray) -> torch.Tensor:
        """Pooled text features for a step: each caption or, with --caption-prompts P, its twin."""
        if not self.twins:
            return self.pooled_texts(caps)
        twin = self.rng.random(len(caps)) < self.config.caption_prompts
        if self.twin_feats is None:  # unlocked text layers: through the tower
            texts = [self.twins[c] if t else self.data.captions[c] for c, t in zip(caps, twin, strict=True)]
            return self.base.pooled_text(texts)
        feats = self.pooled_texts(caps).clone()
        rows = torch.from_numpy(self.twin_row[caps[twin]]).to(feats.device)
        feats[torch.from_numpy(twin).to(feats.device)] = self.twin_feats[rows]
        return feats

    def batches(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Endless (epoch, image ids, caption ids): one random caption per image, no image twice a batch."""
        size = min(self.config.batch_size, len(self.train_idx))
        epoch = 0
        while True:
            order = self.rng.permutation(self.train_idx)
            for start in range(0, len(order) - size + 1, size):
                images = order[start : start + size]
                caps = np.array([self.rng.choice(self.caps_by_image[i]) for i in images])
                yield epoch, images, caps
            epoch += 1

    def steps_per_epoch(self) -> int:
        return max(1, len(self.train_idx) // min(self.config.batch_size, len(self.train_idx)))

    def pooled_texts(self, caption_ids: np.ndarray) -> torch.Tensor:
        if self.text_feats is not None:
            return self.text_feats[torch.from_numpy(caption_ids).to(self.base.device)]
        return self.base.pooled_text([self.data.captions[c] for c in caption_ids])

    # ---------------------------------------------------------------------------------- steps
    def step(self, images: np.ndarray, caps: np.ndarray) -> tuple[float, float]:
        self.optimizer.zero_grad(set_to_none=True)
        ids = torch.from_numpy(images).to(self.base.device)
        img = self.head.image_embeds(self.training_images(ids))
        txt = self.head.text_embeds(self.training_texts(caps))
        loss = contrastive_loss(self.head.scale() * txt @ img.T)
        penalty = self.head.penalty() + self.text_penalty().to(loss.device)
        total = loss + self.config.init_decay * penalty
        if self.teacher is not None:
            total = total + self.config.distill * self.teacher.loss(self.head, ids, img)
        total.backward()
        self.optimizer.step()
        return float(loss.detach()), float(penalty.detach())

    @torch.no_grad()
    def validate(self, step: int, epoch: float) -> Validation | None:
        if len(self.val_idx) == 0:
            return None
        ids = torch.from_numpy(self.val_idx).to(self.base.device)
        img = self.head.image_embeds(self.image_feats[ids])
        chunks = [self.pooled_texts(self.val_caps[s : s + 256]) for s in range(0, len(self.val_caps), 256)]
        txt = self.head.text_embeds(torch.cat(chunks))
        metrics = retrieval_metrics((txt @ img.T).cpu().numpy(), self.val_targets)
        agreement = self.teacher.agreement(self.head, ids, img) if self.teacher else None
        zero_shot = None
        if self.zero_shot is not None:
            if not self.text_locked:  # the class prompts move with the unlocked text layers (no cache)
                anchors = text_features(self.base, anchor_prompts(), None)
                self.zero_shot.anchors = torch.from_numpy(anchors).to(self.base.device)
            zero_shot = self.zero_shot.accuracy(self.head, self.image_feats)
        return Validation(step, epoch, mean_recall(metrics), metrics, agreement, zero_shot)

    def snapshot(self) -> dict[str, Any]:
        return {
            "head": {k: v.detach().clone() for k, v in self.head.state_dict().items()},
            "text": [p.detach().clone() for p in self.text_params],
        }

    @torch.no_grad()
    def restore(self, state: dict[str, Any]) -> None:
        self.head.load_state_dict(state["head"])
        for p, saved in zip(self.text_params, state["text"], strict=True):
            p.copy_(saved)

    def interpolate(self, alpha: float) -> None:
        """Every trained parameter to ``base + alpha * (current - base)``: a weight-space ensemble."""
        self.head.interpolate(alpha)
        self.text_penalty.interpolate(alpha)


def zero_shot_kept(v: Validation, before: Validation | None) -> bool:
    """Held-out zero-shot top-1 and top-5 at least the base model's (``--keep-zero-shot``)."""
    base = before.zero_shot if before is not None else None
    if base is None or v.zero_shot is None:
        return True
    return v.zero_shot[0] >= base[0] and v.zero_shot[1] >= base[1]


def feature_scale(model: Any, scale: float) -> torch.Tensor | None:
    """The per-input scale of the visual projection for ``--feature-scale``: 1 on the class
    distribution, ``scale`` on the pooled features after it (a feature-carrying default tower only)."""
    if scale == 1.0:
        return None
    vision = model.config.vision_config
    if not getattr(vision, "features", False):
        raise UsageError("--feature-scale needs a base built with `dualens build-default-model --features`")
    weights = torch.ones(model.visual_projection.in_features)
    weights[int(vision.num_classes) :] = scale
    return weights


def _log(fh: IO[str], record: dict[str, Any]) -> None:
    fh.write(json.dumps(record) + "\n")
    fh.flush()


def _validation_record(v: Validation, train_loss: float | None) -> dict[str, Any]:
    return {"event": "validation", "step": v.step, "epoch": round(v.epoch, 3), "train_loss": train_loss,
            "val_mean_recall": v.score, "val_zero_shot_agreement": v.agreement, "val_zero_shot": v.zero_shot,
            **{"val_" + k: d for k, d in asdict(v.metrics).items()}}  # fmt: skip


def check_out_dir(config: TrainConfig, base_location: str) -> None:
    out = config.out.resolve()
    if str(out) == str(Path(base_location).resolve()):
        raise UsageError("--out must differ from the base model's directory")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file")
    ours = (out / META_NAME).exists() or (out / LOG_NAME).exists()
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise UsageError(f"--out {out} is not empty and not a previous `dualens train` output")


def train(config: TrainConfig, progress: bool = False) -> TrainResult:
    """LiT-train ``config.base`` on ``config.captions`` and save the best model to ``config.out``."""
    trainer, result = fit(config, progress)
    save_trained(trainer.base, trainer.head, config, result)
    return result


def fit(config: TrainConfig, progress: bool = False) -> tuple[_Trainer, TrainResult]:
    """Train without saving: the trainer (holding the best state) and the result."""
    config.validate()
    dataset = load_caption_dataset(config.images, config.captions)
    if len(dataset.images) < 3:
        raise UsageError("training needs at least 3 captioned images")
    base = load_base(config.base, config.device)
    check_out_dir(config, base.location)
    trainer = _Trainer(config, base, dataset, progress)
    per_epoch = trainer.steps_per_epoch()
    total = config.steps or config.epochs * per_epoch
    every = config.eval_every or per_epoch
    config.out.mkdir(parents=True, exist_ok=True)
    log_file = config.out / LOG_NAME
    with log_file.open("w", encoding="utf-8") as fh:
        result = _run(trainer, total, every, per_epoch, fh)
    result.out, result.log_file = config.out, log_file
    return trainer, result


def _run(trainer: _Trainer, total: int, every: int, per_epoch: int, fh: IO[str]) -> TrainResult:
    before = trainer.validate(0, 0.0)
    history = [before] if before else []
    if before:
        _log(fh, _validation_record(before, None))
    best, best_state, bad, stopped, losses = before, trainer.snapshot(), 0, False, []
    bar = tqdm(total=total, desc="LiT training", unit="step", disable=not trainer.progress)
    step = 0
    for step, (_, images, caps) in enumerate(trainer.batches(), start=1):
        loss, penalty = trainer.step(images, caps)
        losses.append(loss)
        scale = float(trainer.head.scale().detach())
        _log(fh, {"event": "step", "step": step, "loss": loss, "penalty": penalty, "logit_scale": scale})
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", best=f"{best.score:.1f}" if best else "-")
        if step % every == 0 or step == total:
            v = trainer.validate(step, step / per_epoch)
            if v is not None:
                history.append(v)
                _log(fh, _validation_record(v, float(np.mean(losses[-every:]))))
                kept = zero_shot_kept(v, before) or not trainer.config.keep_zero_shot
                if (best is None or v.score > best.score + 1e-9) and kept:
                    best, best_state, bad = v, trainer.snapshot(), 0
                else:
                    bad += 1
                if bad >= trainer.config.patience:
                    stopped = True
                    break
        if step >= total:
            break
    bar.close()
    if before is not None and not trainer.config.keep_last:
        trainer.restore(best_state)  # the best validated state (the base model if nothing beat it)
    best_step = best.step if best else step
    result = TrainResult(Path(), step, best, before, stopped, Path(), history, trainer.config.keep_last)
    if trainer.config.wise_ft < 1.0:
        result.wise, result.wise_rejected = weight_space_ensemble(trainer, best_step, before)
        if result.wise is not None:
            wise = {"event": "wise_ft", "alpha": trainer.config.wise_ft, "rejected": result.wise_rejected}
            _log(fh, _validation_record(result.wise, None) | wise)
    _log(fh, {"event": "end", "steps": step, "stopped_early": stopped, "best_step": best_step})
    return result


def weight_space_ensemble(
    trainer: _Trainer, step: int, before: Validation | None
) -> tuple[Validation | None, bool]:
    """Interpolate the trained state toward the base model (WiSE-FT, ``--wise-ft ALPHA``) and validate
    it. With ``--keep-zero-shot`` an ensemble that fails the held-out zero-shot check is undone."""
    trained = trainer.snapshot()
    trainer.interpolate(trainer.config.wise_ft)
    v = trainer.validate(step, step / trainer.steps_per_epoch())
    rejected = v is not None and trainer.config.keep_zero_shot and not zero_shot_kept(v, before)
    if rejected:
        log.warning(
            "--wise-ft %g fails the held-out zero-shot check: saving the trained state",
            trainer.config.wise_ft,
        )
        trainer.restore(trained)
    return v, rejected
