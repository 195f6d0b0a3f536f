"""`spotsync demo`'s folder and limits: it never deletes what it did not make."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main


def test_the_demo_refuses_a_folder_holding_a_log_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pointed at a daemon's folder, the demo says so in one line and deletes nothing."""
    log = tmp_path / "spotsync.db"
    log.write_bytes(b"a real event log")
    pdf = tmp_path / "documents" / "contract.pdf"
    pdf.parent.mkdir()
    pdf.write_bytes(b"%PDF-1.4 signed")
    assert main(["demo", "--dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "was not made by the demo; choose another --dir" in error
    assert log.read_bytes() == b"a real event log"
    assert pdf.read_bytes() == b"%PDF-1.4 signed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--auto-sign", "-1"], "--auto-sign: must be more than 0 seconds"),
        (["--timeout", "0"], "--timeout: must be more than 0 seconds"),
    ],
)
def test_the_demo_refuses_times_it_cannot_run_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--dir", str(tmp_path / "demo"), *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_a_file_in_place_of_the_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "afile"
    path.write_text("x")
    assert main(["demo", "--dir", str(path)]) == 2
    assert f"{path} is not a folder" in capsys.readouterr().err
