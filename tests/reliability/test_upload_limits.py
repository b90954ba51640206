"""Uploads to `dualens serve` are refused before their body is read (issue #27, items 4 and 23).

Found by trying: a 300 MB multipart POST to /similar without the API key grew a 299 MB temporary
file on the server, then got 401; the 20 MiB limit applied only after the whole body was read, and a
50 MB upload was reported as "too large (20.0 MB…)". These tests talk raw HTTP/1.1 to a real uvicorn
(tests/helpers/api_server.py) so that they control exactly how many body bytes are sent, and watch
the server's open temporary files (``/proc/PID/fd``) for how much of a body it wrote to disk.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.api_server import KEY, Server

LIMIT = 2 * 1024 * 1024  # the server's upload limit in these tests (DUALENS_UI_MAX_UPLOAD_BYTES)
ENVELOPE = 64 * 1024  # what the server allows on top of it for the multipart envelope (ui/api.py)
ANSWER_WITHIN_S = 15.0
MOST_SENT = 32 * LIMIT  # a chunked body is sent up to this size (loopback buffers hold several MiB)
BOUNDARY = "dualens-test-boundary"
PART_HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n'
    "Content-Type: image/jpeg\r\n\r\n"
).encode()


class LimitedServer(Server):
    """`dualens serve` with a 2 MiB upload limit and its temporary files in ``spool``."""

    def __init__(self, data: Path, key: Path, spool: Path) -> None:
        self.spool = spool
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DUALENS_UI_MAX_UPLOAD_BYTES", str(LIMIT))
            env.setenv("TMPDIR", str(spool))
            super().__init__(data, "--api-key-file", str(key))


@pytest.fixture(scope="module")
def server(api_world: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LimitedServer]:
    running = LimitedServer(*api_world, spool=tmp_path_factory.mktemp("server-tmp"))
    yield running
    running.stop()


class SpoolWatch:
    """The largest temporary file (in the server's TMPDIR) the server held open while watched."""

    def __init__(self, pid: int, folder: str) -> None:
        self.pid, self.folder, self.peak = pid, folder, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> SpoolWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        fds = f"/proc/{self.pid}/fd"
        while not self._stop.is_set():
            for fd in os.listdir(fds) if os.path.isdir(fds) else ():
                try:
                    if os.readlink(f"{fds}/{fd}").startswith(self.folder):
                        self.peak = max(self.peak, os.stat(f"{fds}/{fd}").st_size)
                except OSError:
                    continue  # closed meanwhile
            time.sleep(0.002)


class Answer:
    """Reads the server's answer on its own thread while the test keeps sending."""

    def __init__(self, sock: socket.socket) -> None:
        self.data = b""
        self._sock = sock
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while chunk := self._sock.recv(65536):
                self.data += chunk
                if self.complete():
                    return
        except OSError:
            return

    def complete(self) -> bool:
        head, sep, body = self.data.partition(b"\r\n\r\n")
        if not sep:
            return False
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            None,
        )
        return length is not None and len(body) >= length

    def wait(self) -> tuple[int, dict[str, dict[str, str]]]:
        """The status and JSON body; fails when none came within ANSWER_WITHIN_S."""
        self._thread.join(timeout=ANSWER_WITHIN_S)
        assert self.complete(), f"no answer within {ANSWER_WITHIN_S} s (got {self.data[:200]!r})"
        head, _, body = self.data.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), json.loads(body)


def _open(server: LimitedServer, headers: dict[str, str]) -> tuple[socket.socket, Answer]:
    """A POST /similar whose head (no body byte) is sent; the answer is read as it comes."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WITHIN_S)
    lines = [
        "POST /similar HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock, Answer(sock)


def test_an_upload_without_the_key_is_refused_before_its_body_is_sent(server: LimitedServer) -> None:
    sock, answer = _open(server, {"Content-Length": str(300 * 1000 * 1000)})
    with sock:
        status, body = answer.wait()  # not one byte of the 300 MB was sent
    assert status == 401 and body["error"]["code"] == "unauthorised"


def test_an_upload_over_the_limit_is_refused_by_its_length_and_states_its_real_size(
    server: LimitedServer,
) -> None:
    sock, answer = _open(server, {"Content-Length": str(50 * 1024 * 1024), "Authorization": f"Bearer {KEY}"})
    with sock:
        status, body = answer.wait()
    assert status == 413 and body["error"]["code"] == "too_large"
    assert "(50.0 MB; the limit is 2.0 MB)" in body["error"]["message"]


def test_a_chunked_upload_is_cut_off_at_the_limit_without_writing_more(server: LimitedServer) -> None:
    """No Content-Length: the server counts what it reads, answers 413 once past the limit, and
    never holds more than the limit in a temporary file (the old server wrote all of it)."""
    chunk = b"\xff" * (64 * 1024)
    sock, answer = _open(server, {"Transfer-Encoding": "chunked", "Authorization": f"Bearer {KEY}"})
    sent = 0
    with sock, SpoolWatch(server.proc.pid, str(server.spool)) as watch:
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(PART_HEAD), PART_HEAD))
            while sent < MOST_SENT and not answer.data:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            if not answer.data:  # the whole body went in: end it (the old server read all of it)
                tail = f"\r\n--{BOUNDARY}--\r\n".encode()
                sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))
        except OSError:
            pass  # the server answered and closed: it reads no more
        status, body = answer.wait()
    assert watch.peak <= LIMIT + ENVELOPE, f"the server wrote {watch.peak} bytes of a capped upload"
    assert status == 413 and body["error"]["code"] == "too_large", body
    assert sent < MOST_SENT  # it answered while the body was still coming
