"""Decode bombs below the scan cap, slow decoders on every indexing path, uploads in a bounded worker
(issue #27, item 5) and motion photos (item 23): each reproduced.

Bombs are generated here, seeded and small: a progressive JPEG whose last scan is repeated and whose
frame header claims a high resolution (each scan makes the decoder visit every block of the frame).
A slow decoder is simulated from the outside by replacing ``decode_file`` / ``open_image`` in the
module that calls it (worker processes are forked: they inherit the replacement).
"""

from __future__ import annotations

import io
import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import indexer.decode as decode_module
import indexer.decode_pool as pool_module
import ui.safety as safety_module
from indexer.core.errors import ImageError, ImageProblem
from indexer.core.imaging import open_image
from indexer.core.limits import UPLOAD_DECODERS
from indexer.decode import Decoded, DecodeFailure, DecodeOptions, DecodeResult, DecodeTask, decode_file
from indexer.decode_pool import DecoderPool
from indexer.pipeline import IndexOptions, run_index
from indexer.ray_engine import decode_batch
from tests.helpers.fake_encoder import FAKE_PREPROCESS, FakeEncoder
from tests.helpers.images import jpeg_bytes, pattern, save_jpeg
from ui.safety import decode_upload

UPLOAD = {"max_bytes": 20 << 20, "max_pixels": 50_000_000}


# ---------------------------------------------------------------- generators
def scan_bomb(size: tuple[int, int], scans: int, seed: int = 0) -> bytes:
    """A progressive JPEG of ``size`` with about ``scans`` scans, a few KB whatever the size.

    A 64x64 seeded image is encoded progressively, its last scan repeated, and its frame header
    (SOF2) rewritten to ``size``: the decoder visits every block of the claimed frame in every scan.
    """
    buf = io.BytesIO()
    pattern((64, 64), seed=seed).convert("L").save(buf, "JPEG", progressive=True, quality=60)
    data = buf.getvalue()
    sof = data.index(b"\xff\xc2")
    width, height = size
    data = data[: sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[sof + 9 :]
    last_scan = data[data.rindex(b"\xff\xda") : data.rindex(b"\xff\xd9")]
    return data[:-2] + last_scan * (scans - data.count(b"\xff\xda")) + b"\xff\xd9"


def motion_photo(seed: int = 0) -> bytes:
    """A JPEG followed by 20 MB of video, as Google and Samsung motion photos are laid out."""
    video = b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(seed).bytes(20 << 20)
    return jpeg_bytes(pattern((96, 64), seed=seed)) + video


def _photos(root: Path, n: int) -> list[str]:
    return [str(save_jpeg(root / f"p{i:02d}.jpg", seed=i)) for i in range(n)]


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of the test: lets a simulated stuck decode in this process return."""
    event = threading.Event()
    yield event
    event.set()


def _stuck_on(path: str, release: threading.Event, real=decode_file):  # type: ignore[no-untyped-def]
    def decode(task: DecodeTask, opts: DecodeOptions, known: frozenset[str] = frozenset()) -> DecodeResult:
        if task.path == path:
            release.wait(30)  # a decoder that does not return (in a forked worker: until it is killed)
        return real(task, opts, known)

    return decode


# ---------------------------------------------------------------- bombs under the scan cap
@pytest.mark.timeout(120)
def test_a_many_scan_progressive_jpeg_at_high_resolution_is_refused_at_once() -> None:
    bomb = scan_bomb((7000, 7000), scans=150)  # 49 megapixels, under the 200-scan cap
    assert len(bomb) < 100_000 and bomb.count(b"\xff\xda") == 150
    for attempt in (
        lambda: open_image(bomb),
        lambda: open_image(bomb, min_side=224),  # the indexer's draft-mode decode
        lambda: decode_upload(bomb, **UPLOAD),
    ):
        start = time.monotonic()
        with pytest.raises(ImageError) as refused:
            attempt()
        assert refused.value.kind is ImageProblem.TOO_SLOW and "decode bomb" in refused.value.detail
        assert time.monotonic() - start < 3.0


@pytest.mark.timeout(120)
def test_the_indexer_records_a_high_resolution_bomb_as_too_slow_without_decoding_it(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    _photos(photos, 2)
    (photos / "bomb.jpg").write_bytes(scan_bomb((13000, 13000), scans=60))  # 169 megapixels
    start = time.monotonic()
    summary = run_index(tmp_path / "data", [photos], IndexOptions(workers=0), encoder=FakeEncoder())
    assert (summary.indexed, summary.failed) == (2, 1)
    assert time.monotonic() - start < 20.0  # the old decode alone took minutes here


@pytest.mark.timeout(120)
def test_eight_concurrent_bomb_uploads_are_all_refused_quickly() -> None:
    bombs = [scan_bomb((7000, 7000), scans=150, seed=seed) for seed in range(8)]
    outcomes: list[ImageProblem | None] = []

    def upload(data: bytes) -> None:
        try:
            decode_upload(data, **UPLOAD)
            outcomes.append(None)
        except ImageError as exc:
            outcomes.append(exc.kind)

    start = time.monotonic()
    threads = [threading.Thread(target=upload, args=(bomb,)) for bomb in bombs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [ImageProblem.TOO_SLOW] * 8
    assert time.monotonic() - start < 10.0


# ---------------------------------------------------------------- motion photos
@pytest.mark.timeout(60)
def test_a_motion_photo_jpeg_decodes_like_the_jpeg_it_starts_with(tmp_path: Path) -> None:
    data = motion_photo()
    assert data.count(b"\xff\xda") > 200  # the video holds enough scan-marker-like bytes to fool a count
    assert open_image(data).image.size == (96, 64)
    path = tmp_path / "PXL_motion.jpg"
    path.write_bytes(data)
    result = decode_file(DecodeTask(0, str(path)), DecodeOptions(FAKE_PREPROCESS))
    assert isinstance(result, Decoded) and (result.width, result.height) == (96, 64)


# ---------------------------------------------------------------- the decode timeout, per file
@pytest.mark.timeout(60)
def test_the_decode_timeout_holds_per_file_on_the_wall_clock_with_worker_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    files = _photos(tmp_path / "photos", 8)
    monkeypatch.setattr(pool_module, "decode_file", _stuck_on(files[3], release))
    tasks = [DecodeTask(i, path) for i, path in enumerate(files)]
    start = time.monotonic()
    with DecoderPool(DecodeOptions(FAKE_PREPROCESS), workers=1, chunk_size=8, decode_timeout=1.0) as pool:
        results = {r.item_no: r for r in pool.decode(tasks)}
    elapsed = time.monotonic() - start
    assert sorted(results) == list(range(8))
    assert [(r.item_no, r.kind) for r in results.values() if isinstance(r, DecodeFailure)] == [
        (3, ImageProblem.TOO_SLOW)
    ]
    assert elapsed < 5.0  # timeout x chunk (8 s) and more before


@pytest.mark.timeout(60)
def test_the_decode_timeout_holds_with_workers_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    photos = tmp_path / "photos"
    files = _photos(photos, 4)
    stuck = _stuck_on(files[1], release)
    monkeypatch.setattr(decode_module, "decode_file", stuck)
    monkeypatch.setattr(pool_module, "decode_file", stuck)
    start = time.monotonic()
    options = IndexOptions(workers=0, decode_timeout=1.0)
    summary = run_index(tmp_path / "data", [photos], options, encoder=FakeEncoder())
    assert (summary.indexed, summary.failed) == (3, 1)
    assert time.monotonic() - start < 15.0  # the stuck decode alone would hold the run for 60 s


@pytest.mark.timeout(60)
def test_the_ray_engine_s_decode_gives_up_on_a_slow_file_after_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    files = _photos(tmp_path / "photos", 3)
    monkeypatch.setattr(decode_module, "decode_file", _stuck_on(files[0], release))
    batch = {
        "item_no": np.arange(3),
        "path": np.array(files, dtype=object),
        "old_hash": np.array([""] * 3, dtype=object),
    }
    start = time.monotonic()
    out = decode_batch(batch, DecodeOptions(FAKE_PREPROCESS, timeout=1.0), frozenset())
    assert time.monotonic() - start < 5.0
    results = [pickle.loads(r) for r in out["result"]]
    assert isinstance(results[0], DecodeFailure) and results[0].kind is ImageProblem.TOO_SLOW
    assert all(isinstance(r, Decoded) for r in results[1:])


# ---------------------------------------------------------------- uploads in a bounded worker
@pytest.mark.timeout(60)
def test_a_slow_upload_decode_is_stopped_at_its_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(safety_module, "open_image", lambda *a, **k: time.sleep(60))
    start = time.monotonic()
    with pytest.raises(ImageError) as stopped:
        decode_upload(jpeg_bytes(), **UPLOAD, timeout=1.0)
    assert stopped.value.kind is ImageProblem.TOO_SLOW
    assert time.monotonic() - start < 5.0
    monkeypatch.undo()
    assert decode_upload(jpeg_bytes(), **UPLOAD).size == (64, 48)  # the next upload is served


@pytest.mark.timeout(60)
def test_uploads_are_decoded_a_bounded_number_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = open_image

    def slow_open(*args, **kwargs):  # type: ignore[no-untyped-def]
        marker = tmp_path / f"{time.monotonic_ns()}-{threading.get_native_id()}"
        marker.write_text(f"{time.monotonic()}\n")
        time.sleep(0.8)
        with marker.open("a") as fh:
            fh.write(f"{time.monotonic()}\n")
        return real_open(*args, **kwargs)

    monkeypatch.setattr(safety_module, "open_image", slow_open)
    n = UPLOAD_DECODERS + 2
    threads = [threading.Thread(target=decode_upload, args=(jpeg_bytes(),), kwargs=UPLOAD) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spans = [tuple(map(float, p.read_text().split())) for p in tmp_path.iterdir()]
    assert len(spans) == n and all(len(span) == 2 for span in spans)
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most <= UPLOAD_DECODERS


@pytest.mark.timeout(60)
def test_an_upload_needing_more_memory_than_its_limit_is_refused_outside_the_server() -> None:
    buf = io.BytesIO()
    Image.new("L", (8000, 8000), 90).save(buf, "PNG")  # 64 megapixels: 256 MB once decoded to RGB
    data = buf.getvalue()
    before = _resident_bytes()
    with pytest.raises(ImageError) as refused:
        decode_upload(data, max_bytes=20 << 20, max_pixels=100_000_000, max_memory=64 << 20)
    assert refused.value.kind is ImageProblem.TOO_LARGE
    assert _resident_bytes() - before < 32 << 20  # the decoder's memory was never the caller's


def _resident_bytes() -> int:
    import resource

    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()
