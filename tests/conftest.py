"""Shared fixtures: tiny random dual encoders (fast) and the real offline default model (slow)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from indexer.core.models import DualEncoder

# Tests never reach a model hub: local directories only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Property tests draw the same examples on every run in CI (no flaky "found a new example" failures),
# with no wall-clock deadline on a shared 2-core machine. Locally they explore freely.
settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random VisionTextDualEncoderModel (ViT + BERT) with its processor."""
    from tests.helpers.tiny_models import make_tiny_dual_encoder

    return make_tiny_dual_encoder(tmp_path_factory.mktemp("tiny-vtde"), "vtde")


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIPModel with its processor (shortest-edge resize + center crop)."""
    from tests.helpers.tiny_models import make_tiny_dual_encoder

    return make_tiny_dual_encoder(tmp_path_factory.mktemp("tiny-clip"), "clip")


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SiglipModel with its processor (sigmoid scores, max_length padding)."""
    from tests.helpers.tiny_models import make_tiny_dual_encoder

    return make_tiny_dual_encoder(tmp_path_factory.mktemp("tiny-siglip"), "siglip")


@pytest.fixture(scope="session")
def default_encoder() -> Iterator[DualEncoder]:
    """The real offline default model, built into the default model directory on first use.

    Slow (seconds to build once, then cached on disk): tests using it are marked ``slow``.
    """
    from indexer.core.models import load_encoder

    yield load_encoder("default", device="cpu", backend="torch")
