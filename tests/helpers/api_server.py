"""A real `dualens serve` (uvicorn) on a free loopback port over a small generated collection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers.ui_fixtures import build_collection, make_photos

REPO = Path(__file__).resolve().parents[2]
KEY = "k" * 24


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            sys.executable,
            "-m",
            "ui.cli",
            "serve",
            "--data",
            str(data),
            "--port",
            str(self.port),
            *extra,
        ]
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            assert self.proc.poll() is None, self.proc.communicate()
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API did not come up"
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def make_world(base: Path, model_dir: Path) -> tuple[Path, Path]:
    """12 photos (and a symlink out of the root) indexed into ``base/data``; the API key file."""
    photos, data = base / "photos", base / "data"
    make_photos(photos, n=12)
    (base / "secret.txt").write_text("not a photo")
    os.symlink(base / "secret.txt", photos / "link-out.jpg")  # a symlink out of the root
    build_collection(data, photos, model_dir)
    key = base / "api.key"
    key.write_text(KEY + "\n")
    return data, key
