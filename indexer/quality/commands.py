"""``dualens eval`` and ``dualens train``: measure a dual encoder, and LiT-train one on captioned photos."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from indexer.core import options as opts
from indexer.core.errors import UsageError
from indexer.quality.metrics import RetrievalMetrics, ZeroShotMetrics


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``eval`` and ``train``."""
    _register_eval(subparsers, common)
    _register_train(subparsers, common)


# --------------------------------------------------------------------------------------------- eval


def _register_eval(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "eval",
        parents=[common],
        help="measure retrieval recall or zero-shot accuracy of a model on a captioned/labelled image set",
        description=(
            "With --captions: text-to-image and image-to-text recall@1/5/10 and median rank. "
            "With --labels or --labels-from-filenames: zero-shot top-1/top-5 accuracy using prompt templates."
        ),
    )
    p.add_argument("--images", required=True, metavar="DIR", help="directory of the images")
    task = p.add_mutually_exclusive_group(required=True)
    task.add_argument("--captions", metavar="CSV", help="CSV with columns image,caption (paths under DIR)")
    task.add_argument("--labels", metavar="CSV", help="CSV with columns image,label")
    task.add_argument(
        "--labels-from-filenames",
        action="store_true",
        help="label = file name without the WordNet id (n01440764_tench.JPEG -> tench)",
    )
    p.add_argument("--model", default=None, help="model directory or hub id (default: the offline default)")
    p.add_argument(
        "--templates",
        default=None,
        metavar="SET|FILE|TEMPLATE",
        help="zero-shot prompts: a named set (name, photo, photo5, clip7), a file, or 'a photo of {}'",
    )
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the on-disk embedding cache")
    opts.add_count(p, "--batch-size", high=opts.MAX_BATCH, default=32, help="model batch size (default 32)")
    p.add_argument("--device", default=None, help="torch device (default: automatic)")
    opts.add_backend(p)
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from indexer.core.models import load_encoder
    from indexer.quality.data import labels_from_filenames, load_caption_dataset, load_label_dataset
    from indexer.quality.evaluate import EvalOptions, eval_cache_dir, evaluate_retrieval, evaluate_zero_shot
    from indexer.quality.prompts import resolve_templates

    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    encoder = load_encoder(args.model, device=args.device, batch_size=args.batch_size, backend=args.backend)
    options = EvalOptions(
        cache_dir=None if args.no_cache else eval_cache_dir(args.data),
        progress=sys.stderr.isatty() and not args.json,
    )
    report: dict[str, Any] = {"model": encoder.model_id, "images": args.images}
    if args.captions:
        dataset = load_caption_dataset(args.images, args.captions)
        retrieval = evaluate_retrieval(encoder, dataset, options)
        report.update(task="retrieval", captions=args.captions, **asdict(retrieval))
        text = format_retrieval(encoder.model_id, retrieval)
    else:
        templates = resolve_templates(args.templates)
        if args.labels:
            labelled = load_label_dataset(args.images, args.labels)
        else:
            labelled = labels_from_filenames(args.images)
        zero_shot = evaluate_zero_shot(encoder, labelled, templates, options)
        report.update(task="zero-shot", templates=list(templates), **asdict(zero_shot))
        text = format_zero_shot(encoder.model_id, zero_shot, len(templates))
    print(json.dumps(report, indent=2) if args.json else text)
    return 0


def format_retrieval(model_id: str, m: RetrievalMetrics) -> str:
    rows = [
        f"model: {model_id}",
        f"retrieval over {m.n_images} images, {m.n_captions} captions",
        f"{'':14} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'median rank':>12}",
    ]
    for name, d in (("text → image", m.text_to_image), ("image → text", m.image_to_text)):
        rows.append(
            f"{name:14} {d.recall_at_1:6.1f} {d.recall_at_5:6.1f} {d.recall_at_10:6.1f} {d.median_rank:12g}"
        )
    return "\n".join(rows)


def format_zero_shot(model_id: str, m: ZeroShotMetrics, n_templates: int) -> str:
    return "\n".join(
        [
            f"model: {model_id}",
            f"zero-shot over {m.n_images} images, {m.n_classes} classes, {n_templates} prompt template(s)",
            f"top-1 {m.top1:5.1f}   top-5 {m.top5:5.1f}",
        ]
    )


# -------------------------------------------------------------------------------------------- train


def _register_train(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from indexer.quality.train_config import add_train_arguments

    p = subparsers.add_parser(
        "train",
        parents=[common],
        help="LiT-train a dual encoder on captioned photos (image tower locked)",
        description=(
            "Align a VisionTextDualEncoderModel to your captioned photos: the image tower stays locked, "
            "the projections (as residual updates decayed toward the base weights) and the logit scale "
            "are trained, "
            "optionally with the top text layers; early stopping on held-out photos. "
            "Saves a model usable with `dualens index --model DIR`."
        ),
    )
    add_train_arguments(p)
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from indexer.quality.train import train
    from indexer.quality.train_config import config_from_args

    config = config_from_args(args)
    result = train(config, progress=sys.stderr.isatty())
    print(result.summary())
    return 0
