"""What the UI may read: only files inside the indexed roots, and uploads within limits.

The UI never takes a path from a widget or a query parameter. It only handles photo ids, looks
the path up in the collection itself, and still checks that path against the indexed roots
(symlinks resolved) before opening anything, so a tampered database row or a symlink pointing
out of a root cannot make it read other files.

An upload is decoded in a process of its own (forked: it starts in milliseconds), with a memory
limit, a wall-clock time limit and at most ``UPLOAD_DECODERS`` at once: a decode bomb costs the
server neither its memory (given back when the process ends) nor more than that many cores.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import sys
import threading
from collections.abc import Iterable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from PIL import Image

from indexer.core.errors import ImageError, ImageProblem, UnsafePathError
from indexer.core.imaging import open_image
from indexer.core.limits import DEFAULT_UPLOAD_DECODE_TIMEOUT, UPLOAD_DECODERS

_PHOTO_ID = re.compile(r"[0-9]{1,18}")
_REMEMBERED_PATHS = 100_000


class PathGuard:
    """Resolves a photo path and refuses it unless it lies inside one of the roots."""

    def __init__(self, roots: Iterable[str | os.PathLike[str]]) -> None:
        resolved = []
        for root in roots:
            try:
                resolved.append(Path(root).resolve(strict=True))
            except (OSError, RuntimeError):
                continue  # a root that vanished protects nothing and allows nothing
        self.roots: tuple[Path, ...] = tuple(resolved)
        # inside_roots answers per path, remembered for this guard's life: it only decides which
        # hits a page lists (a new guard comes with every new index); reading a file goes through
        # resolve(), which never uses it
        self._inside: dict[str, bool] = {}

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """The real path of an existing file inside a root; :class:`UnsafePathError` otherwise."""
        raw = os.fspath(path)
        if not raw or "\x00" in raw:
            raise UnsafePathError("refusing an empty or malformed path")
        candidate = Path(raw)
        if not candidate.is_absolute() or ".." in candidate.parts:
            raise UnsafePathError(f"refusing a relative path: {raw!r}")
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # missing file, symlink loop
            raise UnsafePathError(f"cannot resolve {raw!r}: {exc.__class__.__name__}") from exc
        if not any(real.is_relative_to(root) for root in self.roots):
            raise UnsafePathError(f"{raw!r} is outside the indexed folders")
        if not real.is_file():
            raise UnsafePathError(f"{raw!r} is not a regular file")
        return real

    def inside_roots(self, path: str | os.PathLike[str]) -> bool:
        """Whether a path would lie inside a root once resolved; it need not exist (yet)."""
        raw = os.fspath(path)
        known = self._inside.get(raw)
        if known is None:
            if len(self._inside) >= _REMEMBERED_PATHS:
                self._inside.clear()
            known = self._inside[raw] = self._resolves_inside(raw)
        return known

    def _resolves_inside(self, raw: str) -> bool:
        if not raw or "\x00" in raw:
            return False
        candidate = Path(raw)
        if not candidate.is_absolute() or ".." in candidate.parts:
            return False
        try:
            real = candidate.resolve(strict=False)
        except (OSError, RuntimeError):
            return False
        return any(real.is_relative_to(root) for root in self.roots)


def parse_photo_id(raw: object) -> int | None:
    """A photo id from an untrusted string (query parameter, widget): digits only, else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw >= 0 else None
    if isinstance(raw, str) and _PHOTO_ID.fullmatch(raw.strip()):
        return int(raw.strip())
    return None


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def decode_upload(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    timeout: float = DEFAULT_UPLOAD_DECODE_TIMEOUT,
    max_memory: int | None = None,
) -> Image.Image:
    """Decode an uploaded photo, checking size before decoding any pixel.

    Returns an RGB image with its EXIF orientation applied. The decoding runs in a separate process
    limited to ``max_memory`` bytes beyond its start (default :func:`upload_memory_limit`) and
    ``timeout`` seconds on the wall clock; at most ``UPLOAD_DECODERS`` run at once, and an upload
    that waits longer than ``timeout`` for its turn is refused. Every failure is an
    :class:`ImageError` whose message can be shown to the user as is.
    """
    if not data:
        raise ImageError("The uploaded file is empty.")
    if len(data) > max_bytes:
        raise ImageError(f"The uploaded file is too large ({_mb(len(data))}; the limit is {_mb(max_bytes)}).")
    memory = upload_memory_limit(max_pixels) if max_memory is None else max_memory
    if not _DECODERS.acquire(timeout=timeout):
        detail = f"{UPLOAD_DECODERS} uploads were being decoded for more than {timeout:g} s"
        message = "The server is busy decoding other uploads; try again in a moment."
        raise ImageError(message, kind=ImageProblem.TOO_SLOW, detail=detail)
    try:
        return _decode_elsewhere(data, max_pixels, timeout, memory)
    finally:
        _DECODERS.release()


def upload_memory_limit(max_pixels: int) -> int:
    """Bytes an upload's decoder may allocate: the decoded image (4 bytes a pixel in Pillow), the
    decoder's own buffers (a progressive JPEG keeps all its coefficients), a turned copy and the
    bytes sent back, for the largest image allowed, plus room for the decoder libraries."""
    return 256 * 1024 * 1024 + 16 * max_pixels


_DECODERS = threading.BoundedSemaphore(UPLOAD_DECODERS)
_UPLOAD = "The uploaded image"


def _decode_elsewhere(data: bytes, max_pixels: int, timeout: float, max_memory: int) -> Image.Image:
    """Decode in a child process; kill it when it is not done within ``timeout`` seconds."""
    # fork: the child starts in milliseconds with the decoders already imported; elsewhere spawn
    context: Any = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_decode_child, args=(send, data, max_pixels, max_memory))
    process.start()
    send.close()  # the child holds the only writer: its end makes recv() raise EOFError
    try:
        if not receive.poll(timeout):
            detail = f"decoding took more than {timeout:g} s"
            raise ImageError(
                f"{_UPLOAD} would take too long to decode.", kind=ImageProblem.TOO_SLOW, detail=detail
            )
        try:
            answer = receive.recv()
            if answer[0] == "error":
                _, message, kind, detail = answer
                raise ImageError(message, kind=ImageProblem(kind), detail=detail)
            _, mode, size = answer
            return Image.frombytes(mode, size, receive.recv_bytes())
        except EOFError:
            detail = "the decoder process died"
            raise ImageError(
                f"{_UPLOAD} could not be decoded.", kind=ImageProblem.CRASHED, detail=detail
            ) from None
    finally:
        receive.close()
        if process.is_alive():
            process.kill()
        process.join()


def _decode_child(send: Connection, data: bytes, max_pixels: int, max_memory: int) -> None:
    """In the child: limit the memory, decode, send (ok, mode, size) and the pixels, or the error."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's: it kills this child
    _limit_memory(max_memory)
    try:
        image = open_image(data, name=_UPLOAD, max_pixels=max_pixels).image
        pixels = image.tobytes()
        send.send(("ok", image.mode, image.size))
        send.send_bytes(pixels)
    except ImageError as exc:
        send.send(("error", str(exc), exc.kind.value, exc.detail))
    except MemoryError:
        detail = f"decoding needs more than {_mb(max_memory)} of memory"
        send.send(
            ("error", f"{_UPLOAD} is too large to decode ({detail}).", ImageProblem.TOO_LARGE.value, detail)
        )
    except Exception as exc:  # a decoder bug: one line for the user, no traceback in the server's log
        detail = f"{type(exc).__name__}: {exc}"[:200]
        send.send(("error", f"{_UPLOAD} could not be decoded.", ImageProblem.CORRUPT.value, detail))
    finally:
        send.close()


def _limit_memory(max_memory: int) -> None:
    """Cap this process's address space at its present size plus ``max_memory`` (where the OS can)."""
    try:
        import resource

        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[0]) * resource.getpagesize()
    except (ImportError, OSError, ValueError, IndexError):
        return  # not Linux: no limit
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = used + max_memory if hard == resource.RLIM_INFINITY else min(hard, used + max_memory)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
