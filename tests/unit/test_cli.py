"""The console script answers --help and --version, and unfinished commands say so honestly."""

from __future__ import annotations

import pytest

from daemon import __version__
from daemon.cli import COMMANDS, main


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`spotsync --version` prints the installed version."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every sub-command documents itself with --help."""
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: spotsync {command}" in capsys.readouterr().out
