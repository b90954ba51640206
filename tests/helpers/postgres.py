"""A throw-away PostgreSQL server for the tests: initdb + pg_ctl in a temp dir, removed afterwards.

It runs as an unprivileged user (``postgres`` via runuser when the tests run as root), listens on a
unix socket in its temp dir and on a free loopback port (password login over TCP, trust on the
socket), with fsync off: it holds nothing worth keeping. Each test gets a fresh database.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

PASSWORD_USER, PASSWORD = "dualens_pw", "right-password"


def find_bin(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, or in Debian's versioned directory."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise FileNotFoundError("PostgreSQL server programs (initdb, pg_ctl) are not installed")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.dir = Path(tempfile.mkdtemp(prefix="dualens-pg-"))
        self.data = self.dir / "cluster"
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.dir.chmod(0o755)

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def start(self) -> PostgresServer:
        self._run(
            self.initdb, "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
            "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            self.pg_ctl, "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options, "-w", "start"
        )
        self.execute(f"CREATE ROLE {PASSWORD_USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
        return self

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(host=str(self.dir), port=self.port, user="postgres", dbname=database) as conn:
            conn.autocommit = True
            conn.execute(sql)

    def url(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` over the unix socket."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.dir}&port={self.port}"

    def tcp_url(self, database: str, password: str = PASSWORD) -> str:
        """The same database over TCP, logging in with a password."""
        return f"postgresql+psycopg://{PASSWORD_USER}:{password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; returns its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.execute(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
