"""A small generated photo collection for the UI tests (AppTest and the real browser).

Photos are drawn with seeded randomness (coloured shapes on coloured backgrounds, a few with EXIF
date and camera) in two folders, then indexed with the real indexer (``dualens index``) and a
tiny random model, so the UI is tested against the same code path users run.
"""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageDraw

FOLDERS = ("beach", "city")
DATED = datetime(2021, 6, 1, 12, 30)


def make_photos(root: Path, n: int = 30, seed: int = 0) -> list[Path]:
    """``n`` JPEGs split over ``root/beach`` and ``root/city``; every third has EXIF date + camera,
    every fifth a GPS position in Paris."""
    rng = random.Random(seed)
    paths: list[Path] = []
    for i in range(n):
        folder = root / FOLDERS[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        w, h = rng.choice([(96, 64), (64, 96), (80, 80)])
        image = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x0, y0 = rng.randrange(w // 2), rng.randrange(h // 2)
            box = (x0, y0, x0 + rng.randrange(8, w // 2), y0 + rng.randrange(8, h // 2))
            fill = tuple(rng.randrange(256) for _ in range(3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        path = folder / f"photo_{i:03d}.jpg"
        exif = Image.Exif()
        if i % 3 == 0:
            exif[0x010F] = "Acme"
            exif[0x0110] = "Snap 1"
            exif.get_ifd(0x8769)[0x9003] = DATED.strftime("%Y:%m:%d %H:%M:%S")
        if i % 5 == 0:
            gps = exif.get_ifd(0x8825)
            gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 23.76), "E", (2.0, 21.0, 7.92)  # Paris
        image.save(path, "JPEG", quality=90, exif=exif.tobytes())
        paths.append(path)
    return paths


def build_collection(
    data_dir: Path, photos_root: Path, model_dir: Path, db_url: str | None = None, *extra: str
) -> None:
    """Index ``photos_root`` into ``data_dir`` (its database at ``db_url``: None, the SQLite file)
    with ``dualens index``, the given model and the ``extra`` options."""
    from ui.cli import main

    db = ["--db", db_url] if db_url else []
    code = main(["index", "--data", str(data_dir), *db, "--model", str(model_dir), *extra, str(photos_root)])
    if code != 0:
        raise RuntimeError(f"dualens index exited with {code}")
