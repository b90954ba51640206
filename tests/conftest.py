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
    from tests.helpers.api_server import Server
    from tests.helpers.db import Databases
    from tests.helpers.postgres import PostgresServer

# Tests never reach a model hub: local directories only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# reading the text in photos costs ~0.1 s a photo: the tests about it turn it on (ocr=True, --ocr runs
# with DUALENS_OCR=on); every other indexing run of the suite leaves it out
os.environ.setdefault("DUALENS_OCR", "off")

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


@pytest.fixture(scope="module")
def api_world(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path]:
    """A small indexed collection for `dualens serve` tests, and its API key file."""
    from tests.helpers.api_server import make_world

    return make_world(tmp_path_factory.mktemp("api"), tiny_model_dir)


@pytest.fixture(scope="module")
def api_server(api_world: tuple[Path, Path]) -> Iterator[Server]:
    """A real `dualens serve` (uvicorn) on a free loopback port over ``api_world``, key required."""
    from tests.helpers.api_server import Server

    running = Server(api_world[0], "--api-key-file", str(api_world[1]))
    yield running
    running.stop()


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


# ---------------------------------------------------------------- the collection database
# Tests that touch the database run on SQLite and on a real PostgreSQL server: a test asks for
# ``database`` (function scope; $DUALENS_DB_URL is set for its run) or a module fixture asks for
# ``module_db_url`` (passes the URL on explicitly). ``@pytest.mark.sqlite_only`` keeps a test to the
# SQLite file (damaged files, another program's file…).
DATABASES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    kinds = ["sqlite"] if metafunc.definition.get_closest_marker("sqlite_only") else list(DATABASES)
    if "database" in metafunc.fixturenames:
        metafunc.parametrize("database", kinds, indirect=True)
    if "databases" in metafunc.fixturenames:
        metafunc.parametrize("databases", kinds, indirect=True)
    if "module_db_url" in metafunc.fixturenames:
        metafunc.parametrize("module_db_url", kinds, indirect=True, scope="module")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throw-away PostgreSQL cluster for the whole run (skipped only where none is installed)."""
    from tests.helpers.postgres import PostgresServer

    try:
        server = PostgresServer()
    except (FileNotFoundError, KeyError) as exc:
        pytest.skip(f"no PostgreSQL server here ({exc}); .ci/run installs Debian's postgresql")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str | None]:
    """The collection database of this test: None (the SQLite file) or a fresh PostgreSQL database."""
    from indexer.core.settings import DB_URL_ENV

    monkeypatch.delenv(DB_URL_ENV, raising=False)
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("postgres_server")
    name = server.new_database()
    monkeypatch.setenv(DB_URL_ENV, server.url(name))
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture(scope="module")
def module_db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """A module's collection database: None (its SQLite file) or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("postgres_server")
    name = server.new_database()
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture
def databases(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Databases]:
    """One database per data directory, for tests that make several collections (see Databases)."""
    from indexer.core.settings import DB_URL_ENV
    from tests.helpers.db import Databases

    monkeypatch.delenv(DB_URL_ENV, raising=False)
    found = Databases(request.getfixturevalue("postgres_server") if request.param == "postgresql" else None)
    yield found
    found.drop_all()


@pytest.fixture(autouse=True)
def _module_database_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that uses a module's collection (``module_db_url``) runs with $DUALENS_DB_URL set to it,
    so the CLI and ``Collection.open(data)`` in the test find it; other tests are left as they are."""
    if "module_db_url" not in request.fixturenames:
        return
    from indexer.core.settings import DB_URL_ENV

    url = request.getfixturevalue("module_db_url")
    if url is None:
        monkeypatch.delenv(DB_URL_ENV, raising=False)
    else:
        monkeypatch.setenv(DB_URL_ENV, url)


# ------------------------------------------------------------------ LiT training (tests/test_quality_train*)
NOUNS = ["cat", "dog", "car", "sky", "sea", "beach", "sunset", "mountain", "tree", "flower", "city", "boat"]
COLOURS = ["red", "blue", "green"]
CLASSES = ["goldfish", "tabby", "hammerhead", "tench", "tiger shark", "Persian cat"]  # ImageNet names


@pytest.fixture(scope="module")
def captioned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """36 images of distinct solid colours (a tiny random ViT tells those apart), two captions each."""
    from tests.helpers.training import write_captioned

    def captions(i: int) -> list[str]:
        noun, colour = NOUNS[i % len(NOUNS)], COLOURS[i // len(NOUNS)]
        return [f"a {colour} {noun}", f"the {noun} {colour}"]

    return write_captioned(tmp_path_factory.mktemp("captioned"), 36, (48, 40), 0, captions)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random ViT+BERT dual encoder initialised with a wide spread (initializer_range 0.2): with
    the usual 0.02 a random BERT gives every caption nearly the same pooled output, so nothing is learnable.
    """
    import torch
    from transformers import (
        VisionTextDualEncoderConfig,
        VisionTextDualEncoderModel,
        VisionTextDualEncoderProcessor,
        ViTImageProcessorPil,
    )

    from tests.helpers.tiny_models import IMAGE_SIZE, tiny_bert_config, tiny_bert_tokenizer, tiny_vit_config

    torch.manual_seed(0)
    tokenizer = tiny_bert_tokenizer()
    vision, text = tiny_vit_config(), tiny_bert_config(len(tokenizer))
    vision.initializer_range = text.initializer_range = 0.2
    config = VisionTextDualEncoderConfig.from_vision_text_configs(vision, text, projection_dim=16)
    out = tmp_path_factory.mktemp("learnable-vtde")
    VisionTextDualEncoderModel(config=config).eval().save_pretrained(out)
    image_processor = ViTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    VisionTextDualEncoderProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def class_captioned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """24 solid-colour photos whose captions name ImageNet classes (a held-out zero-shot set)."""

    def captions(i: int) -> list[str]:
        name = CLASSES[i % len(CLASSES)]
        return [f"a {name} swims by", f"one {name}"]

    from tests.helpers.training import write_captioned

    return write_captioned(tmp_path_factory.mktemp("class-captioned"), 24, (40, 40), 1, captions)
