"""Point 2 and 8 of the indexer issue: fast decoding, EXIF, and every kind of bad file."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import indexer.core.models.preprocess as preprocess_module
import indexer.decode as decode_module
import indexer.decode_pool as pool_module
from indexer.decode import (
    Decoded,
    DecodeFailure,
    DecodeOptions,
    DecodeTask,
    FailureKind,
    KnownContent,
    content_hash,
    decode_file,
    decode_file_within,
)
from indexer.decode_pool import DecoderPool
from tests.helpers.fake_encoder import FAKE_PREPROCESS
from tests.helpers.images import (
    Exif,
    marked,
    pattern,
    save_animated_gif,
    save_as,
    save_cmyk_jpeg,
    save_jpeg,
    save_palette_transparent,
    save_png16,
    write_bomb_png,
    write_corrupt_jpeg,
    write_random_bytes,
    write_text_as_image,
    write_truncated_jpeg,
    write_zero_bytes,
)

OPTS = DecodeOptions(cfg=FAKE_PREPROCESS, transfer_dtype="float32")


def _decode(path: Path, opts: DecodeOptions = OPTS, **kwargs) -> Decoded:
    result = decode_file(DecodeTask(0, str(path)), opts, **kwargs)
    assert isinstance(result, Decoded), result
    return result


def _fail(path: Path, opts: DecodeOptions = OPTS) -> DecodeFailure:
    result = decode_file(DecodeTask(0, str(path)), opts)
    assert isinstance(result, DecodeFailure), result
    return result


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_every_format_decodes_to_model_pixels(tmp_path: Path, fmt: str) -> None:
    path = save_as(tmp_path / f"x.{fmt.lower()}", fmt, pattern((64, 48), seed=3))
    result = _decode(path)
    assert result.pixels.shape == (3, 16, 16) and np.isfinite(result.pixels).all()
    assert (result.width, result.height) == (64, 48)
    assert result.facts.content_hash == content_hash(path.read_bytes())


def test_exif_orientation_is_applied_and_size_is_after_orientation(tmp_path: Path) -> None:
    upright = marked((60, 40))  # red block top-left when shown upright
    # Orientation 6: the viewer turns the stored pixels 90° clockwise. Lossless PNG keeps pixels exact.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    rotated_png = tmp_path / "rotated.png"
    stored.save(rotated_png, "PNG", exif=Exif(orientation=6).to_bytes())
    plain_png = save_as(tmp_path / "plain.png", "PNG", upright)
    oriented, plain = _decode(rotated_png), _decode(plain_png)
    assert (oriented.width, oriented.height) == (60, 40)
    np.testing.assert_allclose(oriented.pixels, plain.pixels, atol=1e-6)
    unrotated = _decode(save_as(tmp_path / "unrotated.png", "PNG", stored))
    assert np.abs(unrotated.pixels - plain.pixels).max() > 0.5  # the rotation did matter


def test_exif_metadata_is_extracted(tmp_path: Path) -> None:
    exif = Exif(
        taken_at=datetime(2021, 5, 4, 10, 11, 12), make="Canon", model="EOS 5D", gps=(48.8584, -2.2945)
    )
    meta = _decode(save_jpeg(tmp_path / "a.jpg", exif=exif)).meta
    assert meta.taken_at == datetime(2021, 5, 4, 10, 11, 12)
    assert (meta.camera_make, meta.camera_model) == ("Canon", "EOS 5D")
    assert meta.gps_lat == pytest.approx(48.8584, abs=1e-4) and meta.gps_lon == pytest.approx(
        -2.2945, abs=1e-4
    )


def test_bogus_exif_values_are_ignored(tmp_path: Path) -> None:
    exif = Exif(orientation=42, taken_at="0000:00:00 00:00:00", make="\x00\x00")
    result = _decode(save_jpeg(tmp_path / "a.jpg", exif=exif))
    assert result.meta.taken_at is None and result.meta.camera_make is None and result.meta.orientation == 1
    assert (result.width, result.height) == (64, 48)


def test_large_jpeg_is_decoded_in_draft_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_jpeg(tmp_path / "big.jpg", pattern((2000, 1500)), quality=80)
    seen: list[tuple[int, int]] = []
    real = preprocess_module.preprocess_image

    def spy(image: Image.Image, cfg, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(image.size)
        return real(image, cfg, **kwargs)

    monkeypatch.setattr(preprocess_module, "preprocess_image", spy)
    result = _decode(path)
    assert (result.width, result.height) == (2000, 1500)  # the original size is recorded
    assert max(seen[0]) <= 2000 // 8 + 1  # DCT scaling: decoded at 1/8, never at full size


def test_odd_modes_decode_without_washing_out(tmp_path: Path) -> None:
    png16 = _decode(save_png16(tmp_path / "deep.png"))
    # a 16-bit ramp must stay a ramp, not clip to white
    assert png16.pixels.min() < -0.5 and png16.pixels.max() > 0.5
    for path in (
        save_cmyk_jpeg(tmp_path / "cmyk.jpg"),
        save_palette_transparent(tmp_path / "palette.png"),
        save_animated_gif(tmp_path / "anim.gif"),
        save_as(tmp_path / "grey.png", "PNG", pattern(mode="L")),
    ):
        assert _decode(path).pixels.shape == (3, 16, 16)


def test_animated_gif_uses_its_first_frame(tmp_path: Path) -> None:
    first = _decode(save_as(tmp_path / "first.gif", "GIF", pattern(seed=0)))
    animated = _decode(save_animated_gif(tmp_path / "anim.gif", seed=0))
    np.testing.assert_allclose(animated.pixels, first.pixels, atol=0.05)


@pytest.mark.parametrize(
    ("writer", "kind"),
    [
        (write_zero_bytes, FailureKind.EMPTY),
        (write_truncated_jpeg, FailureKind.TRUNCATED),
        (write_corrupt_jpeg, None),  # corrupt or truncated, depending on where the garbage lands
        (write_random_bytes, FailureKind.NOT_IMAGE),
        (write_text_as_image, FailureKind.NOT_IMAGE),
        (write_bomb_png, FailureKind.TOO_LARGE),
    ],
)
def test_bad_files_give_a_failure_with_a_reason(tmp_path: Path, writer, kind) -> None:  # type: ignore[no-untyped-def]
    failure = _fail(writer(tmp_path / "bad.jpg"))
    if kind is not None:
        assert failure.kind == kind
    else:
        assert failure.kind in (FailureKind.CORRUPT, FailureKind.TRUNCATED)
    assert failure.reason.startswith(failure.kind.value)


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = save_jpeg(tmp_path / "a.jpg", pattern((200, 100)))
    failure = _fail(path, DecodeOptions(cfg=FAKE_PREPROCESS, max_pixels=19_999))
    assert failure.kind == FailureKind.TOO_LARGE and "200x100" in failure.reason
    assert isinstance(decode_file(DecodeTask(0, str(path)), DecodeOptions(FAKE_PREPROCESS, 20_000)), Decoded)


def test_vanished_and_unreadable_files_fail_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _fail(tmp_path / "gone.jpg").kind == FailureKind.VANISHED
    path = save_jpeg(tmp_path / "locked.jpg")
    real_open = os.open

    def deny(p, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(p) == str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(p, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    failure = _fail(path)
    assert failure.kind == FailureKind.UNREADABLE and "Permission denied" in failure.reason


def test_known_content_is_hashed_but_not_decoded(tmp_path: Path) -> None:
    path = save_jpeg(tmp_path / "a.jpg")
    digest = content_hash(path.read_bytes())
    assert isinstance(decode_file(DecodeTask(0, str(path), old_hash=digest), OPTS), KnownContent)
    assert isinstance(decode_file(DecodeTask(0, str(path)), OPTS, frozenset({digest})), KnownContent)


def test_pool_decodes_in_worker_processes_and_returns_every_task(tmp_path: Path) -> None:
    paths = [save_jpeg(tmp_path / f"{i}.jpg", seed=i) for i in range(9)]
    paths.append(write_zero_bytes(tmp_path / "empty.jpg"))
    tasks = [DecodeTask(i, str(p)) for i, p in enumerate(paths)]
    with DecoderPool(OPTS, workers=2, chunk_size=2, max_in_flight=2) as pool:
        results = {r.item_no: r for r in pool.decode(tasks)}
    assert sorted(results) == list(range(10))
    assert isinstance(results[9], DecodeFailure)
    in_process = _decode(paths[3])
    np.testing.assert_array_equal(results[3].pixels, in_process.pixels)  # type: ignore[union-attr]
    assert results[3].pixels.dtype == np.float32  # type: ignore[union-attr]


def _crash_on_poison(task: DecodeTask, opts: DecodeOptions, known: frozenset[str] = frozenset()):  # type: ignore[no-untyped-def]
    if task.path.endswith("poison.jpg"):
        os._exit(3)  # a decoder segfault, as far as the parent can tell
    return decode_file(task, opts, known)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to inject the crash into the workers")
def test_a_file_that_kills_its_worker_is_isolated_and_recorded(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(pool_module, "decode_file", _crash_on_poison)  # inherited by forked workers
    paths = [save_jpeg(tmp_path / f"{i}.jpg", seed=i) for i in range(6)]
    paths.insert(3, save_jpeg(tmp_path / "poison.jpg"))
    tasks = [DecodeTask(i, str(p)) for i, p in enumerate(paths)]
    with DecoderPool(OPTS, workers=2, chunk_size=2) as pool:
        results = {r.item_no: r for r in pool.decode(tasks)}
    assert sorted(results) == list(range(7))
    assert isinstance(results[3], DecodeFailure) and results[3].kind == FailureKind.CRASHED
    assert all(isinstance(results[i], Decoded) for i in results if i != 3)


def _stuck_on_names(*names: str):  # type: ignore[no-untyped-def]
    def decode(task: DecodeTask, opts: DecodeOptions, known: frozenset[str] = frozenset()):  # type: ignore[no-untyped-def]
        if Path(task.path).name in names:
            time.sleep(30)  # in a forked worker: until the pool kills it
        return decode_file(task, opts, known)

    return decode


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to slow the workers down")
@pytest.mark.timeout(60)
def test_files_stuck_in_two_workers_at_once_are_both_too_slow_and_the_rest_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "decode_file", _stuck_on_names("1.jpg", "4.jpg"))
    paths = [save_jpeg(tmp_path / f"{i}.jpg", seed=i) for i in range(8)]
    tasks = [DecodeTask(i, str(p)) for i, p in enumerate(paths)]
    with DecoderPool(OPTS, workers=2, chunk_size=2, decode_timeout=1.0) as pool:
        results = {r.item_no: r for r in pool.decode(tasks)}
    assert sorted(results) == list(range(8))
    slow = sorted(i for i, r in results.items() if isinstance(r, DecodeFailure))
    assert slow == [1, 4] and all(results[i].kind is FailureKind.TOO_SLOW for i in slow)  # type: ignore[union-attr]
    assert all(isinstance(results[i], Decoded) for i in results if i not in slow)


def test_decode_file_within_returns_the_decode_and_raises_what_the_decoder_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_jpeg(tmp_path / "a.jpg")
    assert isinstance(decode_file_within(DecodeTask(0, str(path)), OPTS), Decoded)

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in a decoder")

    monkeypatch.setattr(decode_module, "decode_file", broken)
    with pytest.raises(RuntimeError, match="a bug in a decoder"):
        decode_file_within(DecodeTask(0, str(path)), OPTS)
