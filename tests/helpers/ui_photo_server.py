"""A real-photo collection served by a real `streamlit run`, for the timeline and theme browser tests
and the page-weight benchmark.

Photos: shared imagenet-sample JPEGs (no EXIF dates) with file dates one per ``DAY_STEP`` days from
``FIRST_DAY``, plus ``len(PLANTED)`` more of them re-saved with an EXIF DateTimeOriginal (dates
drawn with a seeded generator, later than every file date, their own file dates earlier than all),
and one photo dated at the epoch (the timeline's "Undated").
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image

from tests.helpers.ui_fixtures import build_collection
from tests.test_ui_browser import _free_port, _wait_healthy
from ui.commands import streamlit_argv

IMAGENET = next(  # the shared data beside the checkout, or beside the folder of worktrees
    (
        up / "shared" / "datasets" / "imagenet-sample"
        for up in Path(__file__).resolve().parents[3:5]
        if (up / "shared" / "datasets" / "imagenet-sample").is_dir()
    ),
    Path(__file__).resolve().parents[3] / "shared" / "datasets" / "imagenet-sample",
)
FIRST_DAY = datetime(2020, 1, 1, 12, 0)
DAY_STEP = 9  # real photos: one file date every 9 days (Jan to Jun 2020 for 20 photos)
PLANTED = 4  # photos with an EXIF date taken (in 2021)
OLD_FILE_DATE = datetime(2019, 5, 5, 12, 0)  # the planted photos' file dates: older than all


@dataclass(frozen=True)
class Planted:
    """The collection on disk and what the timeline must show: names newest first (the undated
    photo last) and the month each is headed under."""

    photos: Path
    data: Path
    newest_first: list[str]
    months: list[str]


def _exif_dates(n: int, seed: int = 7) -> list[datetime]:
    rng = random.Random(seed)
    days = rng.sample(range(12 * 28), n)  # distinct days of 2021
    return [datetime(2021, 1 + d // 28, 1 + d % 28, 9, 30) for d in days]


def plant_collection(base: Path, n_real: int = 20) -> Planted:
    """Build and index the collection under ``base`` (``photos/``, ``data/``) with the default model."""
    photos, data = base / "photos", base / "data"
    sources = sorted(IMAGENET.glob("*.JPEG"))
    dated: list[tuple[datetime, str]] = []
    (photos / "real").mkdir(parents=True)
    (photos / "planted").mkdir()
    for i, source in enumerate(sources[:n_real]):
        copy = photos / "real" / source.name
        shutil.copyfile(source, copy)
        when = datetime.fromtimestamp(FIRST_DAY.timestamp() + i * DAY_STEP * 86_400)
        os.utime(copy, (when.timestamp(), when.timestamp()))
        dated.append((when, source.name))
    for when, source in zip(_exif_dates(PLANTED), sources[500 : 500 + PLANTED], strict=True):
        copy = photos / "planted" / source.name
        with Image.open(source) as image:
            exif = Image.Exif()
            exif.get_ifd(0x8769)[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
            image.convert("RGB").save(copy, "JPEG", quality=90, exif=exif.tobytes())
        os.utime(copy, (OLD_FILE_DATE.timestamp(), OLD_FILE_DATE.timestamp()))
        dated.append((when, source.name))
    undated = photos / "real" / sources[900].name
    shutil.copyfile(sources[900], undated)
    os.utime(undated, (0, 0))
    build_collection(data, photos, Path("default"))
    dated.sort(reverse=True)
    return Planted(
        photos=photos,
        data=data,
        newest_first=[name for _, name in dated] + [undated.name],
        months=[f"{when:%B %Y}" for when, _ in dated] + ["Undated"],
    )


@contextmanager
def serve(data: Path, log_file: Path, **env: str) -> Iterator[str]:
    """`streamlit run` on ``data`` at a free localhost port; yields its URL."""
    port = _free_port()
    environment = dict(os.environ, DUALENS_DATA=str(data), HF_HUB_OFFLINE="1", **env)
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            streamlit_argv(data, "127.0.0.1", port), env=environment, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
