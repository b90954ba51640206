"""The `dualens` entry point: options written before the command, and --version."""

from __future__ import annotations

from pathlib import Path

import pytest

from ui.cli import command_first, main


def test_common_options_written_before_the_command_move_after_it() -> None:
    assert command_first(["--data", "/d", "search", "a dog"]) == ["search", "--data", "/d", "a dog"]
    assert command_first(["--db=sqlite:///x.db", "-v", "check"]) == ["check", "--db=sqlite:///x.db", "-v"]
    assert command_first(["search", "--data", "/d", "cat"]) == ["search", "--data", "/d", "cat"]
    for unchanged in (["--help"], ["--version"], ["--data"], ["--frobnicate", "search"], []):
        assert command_first(unchanged) == unchanged


def test_a_data_folder_given_before_the_command_is_the_one_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing-here"
    assert main(["--data", str(missing), "check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dualens: error: no collection in ") and str(missing) in err
    assert "unknown command" not in err


def test_version_prints_the_version_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("dualens ") and out[0] != "dualens unknown"
