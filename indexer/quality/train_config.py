"""Options of ``dualens train`` (LiT training), as one dataclass and its command-line form."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from indexer.core.errors import UsageError
from indexer.core.options import MAX_BATCH, int_in

ASPECT_FACTORS = (4 / 3, 3 / 4)  # width/height a square training photo is stretched back to


@dataclass(frozen=True)
class TrainConfig:
    images: Path
    captions: Path
    out: Path
    base: str = "default"
    epochs: int = 100  # upper bound; early stopping usually ends sooner
    steps: int | None = None  # overrides epochs when given
    batch_size: int = 128
    lr: float = 1e-3
    text_lr: float = 2e-5  # for unlocked text layers
    rank: int = 0  # 0: full-rank residual update of each projection; R > 0: low-rank (up @ down)
    init_decay: float = 10.0  # L2 penalty on the relative distance from the initial weights
    distill: float = 0.0  # weight of the KL toward the base model's ImageNet class predictions
    keep_zero_shot: bool = False  # accept a state only if held-out zero-shot top-1/top-5 >= the base's
    feature_scale: float = 1.0  # fixed scale of the default tower's pooled features in the visual input
    train_logit_scale: bool = True
    unlock_text_layers: int = 0
    caption_prompts: float = 0.0  # probability of a training caption's prompt-style twin
    aspect_views: int = 0  # 0-2 stretched views of each training photo (4:3, 3:4)
    wise_ft: float = 1.0  # save base + alpha * (trained - base) (WiSE-FT); 1 = the trained state itself
    val_fraction: float = 0.2
    eval_every: int = 0  # steps between validations; 0 = once per epoch
    patience: int = 5  # validations without improvement before stopping
    keep_last: bool = False  # save the final state, not the best validated one (for comparisons)
    seed: int = 0
    data: Path | None = None  # data dir: feature cache lives in <data>/cache/train
    device: str | None = None

    def validate(self) -> None:
        if self.epochs < 1:
            raise UsageError("--epochs must be at least 1")
        if self.steps is not None and self.steps < 1:
            raise UsageError("--steps must be at least 1")
        if self.batch_size < 2:
            raise UsageError("--batch-size must be at least 2 (contrastive loss needs negatives)")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UsageError("--val-fraction must be in [0, 1)")
        if self.rank < 0 or self.unlock_text_layers < 0 or self.patience < 1 or self.eval_every < 0:
            raise UsageError("--rank, --unlock-text-layers, --eval-every must be >= 0 and --patience >= 1")
        if self.lr <= 0 or self.text_lr <= 0 or self.init_decay < 0 or self.distill < 0:
            raise UsageError("learning rates must be positive, --init-decay and --distill non-negative")
        if self.distill > 0 and self.unlock_text_layers > 0:
            raise UsageError("--distill needs a locked text tower: drop --unlock-text-layers")
        if not 0.0 <= self.caption_prompts <= 1.0:
            raise UsageError("--caption-prompts must be a probability in [0, 1]")
        if not 0 <= self.aspect_views <= len(ASPECT_FACTORS):
            raise UsageError(f"--aspect-views must be 0 to {len(ASPECT_FACTORS)}")
        if not 0 < self.feature_scale <= 1:
            raise UsageError("--feature-scale must be in (0, 1]")
        if not 0 < self.wise_ft <= 1:
            raise UsageError("--wise-ft must be in (0, 1]")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig(images=Path(), captions=Path(), out=Path())
    p.add_argument("--images", required=True, metavar="DIR", help="directory of the training images")
    p.add_argument("--captions", required=True, metavar="CSV", help="CSV with columns image,caption")
    p.add_argument("--out", required=True, metavar="DIR", help="where to save the trained model")
    p.add_argument(
        "--base", default=d.base, help="VisionTextDualEncoder/CLIP model to start from (default: default)"
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs", type=int_in(1, 1_000_000), default=d.epochs, help=f"maximum epochs (default {d.epochs})"
    )
    length.add_argument(
        "--steps", type=int_in(1, 10**9), default=None, help="train for this many steps instead"
    )
    p.add_argument(
        "--batch-size",
        type=int_in(2, MAX_BATCH),
        default=d.batch_size,
        help=f"images per step ({d.batch_size})",
    )
    p.add_argument("--lr", type=float, default=d.lr, help=f"learning rate of the projections ({d.lr})")
    p.add_argument("--text-lr", type=float, default=d.text_lr, help=f"for unlocked text layers ({d.text_lr})")
    p.add_argument(
        "--rank",
        type=int_in(0, 65_536),
        default=d.rank,
        help=f"rank of the projection updates, 0 = full ({d.rank})",
    )
    p.add_argument(
        "--init-decay",
        type=float,
        default=d.init_decay,
        help=f"weight decay toward the base model's weights ({d.init_decay})",
    )
    p.add_argument(
        "--distill",
        type=float,
        default=d.distill,
        metavar="W",
        help="keep zero-shot classification: weight of the KL toward the base model's predictions over "
        f"the 1000 ImageNet class prompts on the training photos ({d.distill}: off)",
    )
    p.add_argument(
        "--keep-zero-shot",
        action="store_true",
        help="accept a validated state only if it classifies the held-out photos whose captions name an "
        "ImageNet class at least as well (top-1 and top-5) as the base model",
    )
    p.add_argument(
        "--feature-scale",
        type=float,
        default=d.feature_scale,
        metavar="G",
        help="bases with a feature-carrying default tower (build-default-model --features): train on its "
        f"pooled features times G, folded into the saved projection ({d.feature_scale})",
    )
    p.add_argument("--freeze-logit-scale", action="store_true", help="keep the base model's logit scale")
    p.add_argument(
        "--unlock-text-layers",
        type=int_in(0, 1000),
        default=0,
        metavar="N",
        help="also train the top N text layers",
    )
    p.add_argument(
        "--caption-prompts",
        type=float,
        default=d.caption_prompts,
        metavar="P",
        help="use each training caption's prompt-style twin ('a photo of …') with probability P "
        f"({d.caption_prompts}: off)",
    )
    p.add_argument(
        "--aspect-views",
        type=int_in(0, len(ASPECT_FACTORS)),
        default=d.aspect_views,
        metavar="N",
        help="square-resized training photos: also train on N views stretched back to 4:3 (1) and "
        f"3:4 (2), one picked at random per photo and step ({d.aspect_views}: off)",
    )
    p.add_argument(
        "--wise-ft",
        type=float,
        default=d.wise_ft,
        metavar="ALPHA",
        help="save the weight-space ensemble base + ALPHA × (trained − base) of every trained parameter "
        f"(WiSE-FT: keeps more of what the base knew outside the training photos) ({d.wise_ft}: off)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help=f"images held out for validation / early stopping ({d.val_fraction})",
    )
    p.add_argument(
        "--eval-every",
        type=int_in(0, 10**9),
        default=0,
        metavar="STEPS",
        help="validate every STEPS (default: per epoch)",
    )
    p.add_argument(
        "--patience", type=int_in(1, 1_000_000), default=d.patience, help="validations without improvement"
    )
    p.add_argument(
        "--keep-last",
        action="store_true",
        help="save the last state instead of the best validated one (to see what early stopping saves)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the split and the sampling")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    config = TrainConfig(
        images=Path(args.images),
        captions=Path(args.captions),
        out=Path(args.out),
        base=args.base,
        epochs=args.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        text_lr=args.text_lr,
        rank=args.rank,
        init_decay=args.init_decay,
        distill=args.distill,
        keep_zero_shot=args.keep_zero_shot,
        feature_scale=args.feature_scale,
        train_logit_scale=not args.freeze_logit_scale,
        unlock_text_layers=args.unlock_text_layers,
        caption_prompts=args.caption_prompts,
        aspect_views=args.aspect_views,
        wise_ft=args.wise_ft,
        val_fraction=args.val_fraction,
        eval_every=args.eval_every,
        patience=args.patience,
        keep_last=args.keep_last,
        seed=args.seed,
        data=Path(args.data) if args.data else None,
        device=args.device,
    )
    config.validate()
    return config
