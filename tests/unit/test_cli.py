"""The console script answers --help and --version, and unfinished commands say so honestly."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon import __version__
from daemon.cli import COMMANDS, main, without_passwords
from daemon.runtime import _describe


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


@pytest.mark.parametrize(
    "command",
    [
        ["events"],
        ["export"],
        ["replay"],
        ["parked"],
        ["parked", "retry", "deal-1"],
        ["projections", "rebuild", "--verify"],
        ["reconcile"],
    ],
)
def test_a_command_reading_the_log_refuses_a_missing_store_rather_than_make_one(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A mistyped SPOTSYNC_DATABASE is one line, not an empty log reported on as if real."""
    missing = tmp_path / "mistyped.db"
    monkeypatch.setenv("SPOTSYNC_DATABASE", str(missing))
    monkeypatch.setenv("SPOTDRAFT_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SPOTDRAFT_CLIENT_ID", "id")
    monkeypatch.setenv("SPOTDRAFT_CLIENT_SECRET", "secret")
    assert main(command) == 2
    assert capsys.readouterr().err == (
        f"spotsync {command[0]}: no event store at {missing} (set SPOTSYNC_DATABASE)\n"
    )
    assert not missing.exists()


def test_run_refuses_a_store_that_keeps_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon acknowledges only what is durable: the memory store is for tests."""
    monkeypatch.setenv("SPOTSYNC_DATABASE", "memory:")
    assert main(["run", "--insecure-local"]) == 2
    assert "keeps nothing once the process ends" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["events", "--since", "-5"], ["replay", "--until", "-1"]])
def test_a_negative_position_is_refused(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(command)
    assert exit_.value.code == 2
    assert "positions start at 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://spotsync:Hunter2-db@db.example/spotsync",
        "postgresql://spotsync@db.example/spotsync?password=Hunter2-db",
        "postgres://db.example/spotsync?sslmode=require&Password=Hunter2-db&application_name=x",
    ],
)
def test_a_database_password_is_masked_in_error_lines_and_the_start_log(url: str) -> None:
    """libpq and asyncpg take the password in the user info or as a query parameter:
    neither form reaches an error line or the "daemon started" log line."""
    line = without_passwords(f"cannot read {url}: connection refused")
    assert "Hunter2-db" not in line
    assert line.endswith(": connection refused")
    assert "db.example/spotsync" in line
    assert "Hunter2-db" not in _describe(url)
    assert "db.example/spotsync" in _describe(url)


def test_run_refuses_a_documents_folder_it_cannot_write_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One line naming the setting at the start, before the store or the port is taken,
    rather than a deferred download for every contract once it runs."""
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("SPOTSYNC_DOCUMENTS_DIR", str(tmp_path / "file" / "documents"))
    monkeypatch.setenv("SPOTSYNC_DATABASE", str(tmp_path / "spotsync.db"))
    monkeypatch.setenv("SPOTSYNC_LISTEN", "127.0.0.1:0")
    monkeypatch.setenv("SPOTDRAFT_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SPOTDRAFT_CLIENT_ID", "id")
    monkeypatch.setenv("SPOTDRAFT_CLIENT_SECRET", "secret")
    monkeypatch.setenv("SPOTDRAFT_HMAC_KEY", "c2VjcmV0LWtleQ==")
    assert main(["run", "--insecure-local", "--log-format", "console"]) == 2
    assert capsys.readouterr().err == (
        f"spotsync run: SPOTSYNC_DOCUMENTS_DIR={tmp_path}/file/documents: spotsync cannot "
        "write there (Not a directory)\n"
    )
    assert not (tmp_path / "spotsync.db").exists()


@pytest.mark.parametrize("command", ["demo", "sandbox"])
def test_a_command_on_settings_of_its_own_refuses_a_config_file(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """demo and sandbox would never read --config: a user who gives one is told so,
    before anything starts, rather than run on other settings than they think."""
    config = tmp_path / "spotsync.toml"
    config.write_text('spotdraft_base_url = "https://api.spotdraft.com"\n')
    assert main(["--config", str(config), command]) == 2
    assert f"spotsync {command}: --config does not apply" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main([command, "--config", str(config)])
    assert exited.value.code == 2
    assert "unrecognized arguments: --config" in capsys.readouterr().err
