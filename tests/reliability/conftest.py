"""Fixtures of the reliability suite: one `dualens` fork server shared by the tests that run the CLI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.faults import CliForkServer


@pytest.fixture(scope="session")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliForkServer]:
    """Runs ``dualens ARGV`` in a forked child of a process that imported dualens once."""
    server = CliForkServer(tmp_path_factory.mktemp("cli"))
    yield server
    server.close()
