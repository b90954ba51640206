"""Constants of the offline default model that are needed without building or loading it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image

from indexer.core.models.preprocess import PreprocessConfig

# Collections store this id. Bump the version whenever the build changes the embeddings (towers,
# prompts, projections, preprocessing) and update DEFAULT_SPEC_FINGERPRINT with it; a directory
# built by an older version is rebuilt on first use.
DEFAULT_ID_PREFIX = "dualens-default-"
DEFAULT_MODEL_ID = "dualens-default-v2"
DEFAULT_SPEC_FINGERPRINT = "5c227e2a07b66669"  # spec_fingerprint() of DEFAULT_SPEC + DEFAULT_PREPROCESS

# EfficientNet-Lite0 evaluation preprocessing (TF reference: (x - 127) / 128, bicubic, centre crop
# 224 of the shortest edge resized to 256). Measured on imagenet-sample: see the README.
DEFAULT_PREPROCESS = PreprocessConfig(
    size=(224, 224),
    resize_shortest_edge=256,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    resample=int(Image.Resampling.BICUBIC),
    rescale_factor=1 / 255,
)


@dataclass(frozen=True)
class DefaultModelSpec:
    """Everything the default model's build depends on (recorded in the model directory)."""

    prompt_templates: tuple[str, ...] = ("a photo of a {}.",)
    temperature: float = 1.2  # classifier softmax temperature (tuned: README "Quality")
    top_k: int = 0  # keep only the k most probable classes, renormalised (0: all 1000)
    logit_scale: float = 12.0  # softmax scale on cosines (the model stores its log); calibrated, see README
    class_names: tuple[str, ...] = field(default=(), repr=False)  # empty: the vendored ImageNet names
    center: bool = True  # both projections remove the mean class-embedding direction (README "Quality")

    def as_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


DEFAULT_SPEC = DefaultModelSpec()


def spec_fingerprint(
    spec: DefaultModelSpec = DEFAULT_SPEC, preprocess: PreprocessConfig = DEFAULT_PREPROCESS
) -> str:
    """A short hash of everything that shapes the default model's embeddings."""
    payload = json.dumps({"spec": spec.as_json(), "preprocess": asdict(preprocess)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
