"""``dualens build-default-model`` and ``dualens build-model`` (see ui/cli.py)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from indexer.core import options as opts
from indexer.core.models.default_spec import VISION_TOWERS


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this module's subcommands. Each subparser sets ``func(args) -> int``."""
    default = subparsers.add_parser(
        "build-default-model",
        parents=[common],
        help="build the offline default model (ImageNet-vocabulary ConSE, no download)",
        description=(
            "Compose the offline default model from a packaged EfficientNet-Lite classifier and "
            "the packaged all-MiniLM-L6-v2 text tower. It is also built automatically on first use."
        ),
    )
    default.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="default: $DUALENS_DEFAULT_MODEL_DIR, else models/default in the default data directory",
    )
    default.add_argument("--force", action="store_true", help="rebuild even if it is up to date")
    default.add_argument(
        "--version",
        choices=("v4.2", "v5"),
        default="v4.2",
        help=(
            "v5: the multilingual text tower (use it with --model dualens-default-v5; "
            "built next to the default)"
        ),
    )
    default.add_argument(
        "--template",
        action="append",
        metavar="TEXT",
        help="prompt template with {} for the class name (repeat for a prompt ensemble)",
    )
    default.add_argument(
        "--vision",
        choices=sorted(VISION_TOWERS),
        default=None,
        help=(
            "vision tower (default: efficientnet-lite2; efficientnet-lite0 embeds about twice as fast "
            "and is less accurate). A non-default build belongs in its own --out DIR, used with --model DIR"
        ),
    )
    default.add_argument(
        "--features",
        action="store_true",
        help="the tower also outputs its pooled image features (the base default-model v4 is trained from)",
    )
    default.add_argument(
        "--head",
        default=None,
        metavar="NAME",
        help="apply a trained head shipped in the package ('' for none)",
    )
    default.set_defaults(func=run_build_default_model)

    head = subparsers.add_parser(
        "export-default-head",
        parents=[common],
        help="save the projections and logit scale of a trained default model into the package",
        description="Used by `make train-default`: the trained head ships with dualens, so every "
        "installation builds the trained default model offline.",
    )
    head.add_argument("model", metavar="DIR", help="a model trained with `dualens train` from a default base")
    head.add_argument(
        "--name",
        default=None,
        help="head name: heads/NAME.safetensors (default: the shipped head of its vision tower)",
    )
    head.set_defaults(func=run_export_default_head)

    compose = subparsers.add_parser(
        "build-model",
        parents=[common],
        help="compose a new dual encoder from a vision model and a text model",
        description=(
            "Compose a VisionTextDualEncoderModel from a pretrained vision model and a pretrained "
            "text model (hub ids or local directories). Projections are random until trained."
        ),
    )
    compose.add_argument("--vision", required=True, metavar="MODEL", help="vision model: hub id or dir")
    compose.add_argument("--text", required=True, metavar="MODEL", help="text model: hub id or dir")
    compose.add_argument("--out", required=True, metavar="DIR", help="directory to save the model into")
    opts.add_count(
        compose, "--projection-dim", high=65_536, default=512, metavar="N", help="projection size (512)"
    )
    compose.add_argument("--seed", type=int, default=0, help="seed of the random projections")
    compose.add_argument("--force", action="store_true", help="overwrite a non-empty --out")
    compose.set_defaults(func=run_build_model)


def run_build_default_model(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from indexer.core.models.default_model import is_current, rebuild_default_model
    from indexer.core.models.default_spec import DEFAULT_SPEC, default_head

    out = Path(args.out).expanduser().resolve() if args.out else args.settings.default_model_dir
    spec = DEFAULT_SPEC
    if args.version == "v5":
        from indexer.core.models.default_spec import V5_DIR, V5_SPEC

        spec = V5_SPEC
        out = out if args.out else out.with_name(V5_DIR)
    if args.template:
        spec = replace(spec, prompt_templates=tuple(args.template))
    if args.vision:  # with the head trained on that tower (unless --head says otherwise)
        spec = replace(spec, vision=args.vision, head=default_head(args.vision) if spec.head else "")
    if args.features:
        spec = replace(spec, features=True)
    if args.head is not None:
        spec = replace(spec, head=args.head)
    if is_current(out, spec) and not args.force:
        print(f"default model is up to date in {out} (use --force to rebuild)")
        return 0
    started = time.perf_counter()
    rebuild_default_model(out, spec)
    print(f"built the default model in {out} ({time.perf_counter() - started:.1f} s)")
    return 0


def run_export_default_head(args: argparse.Namespace) -> int:
    from indexer.core.models.default_head import extract_head

    out = extract_head(args.model, args.name)  # None: the default head of the tower it was trained on
    print(f"saved the trained head of {args.model} to {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def run_build_model(args: argparse.Namespace) -> int:
    from indexer.core.models.compose import build_model

    result = build_model(
        args.vision, args.text, args.out, projection_dim=args.projection_dim, seed=args.seed, force=args.force
    )
    print(f"composed {result.vision} + {result.text} into {result.path} (projections random until trained)")
    return 0
