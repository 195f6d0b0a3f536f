"""`spotsync sandbox --help` documents every option; bad options are one-line errors."""

from __future__ import annotations

import pytest

from daemon.cli import main

OPTIONS = [
    "--host", "--port", "--webhook-url", "--hmac-key", "--client-id", "--client-secret",
    "--auto-sign", "--seed", "--api-error-rate", "--api-timeout-rate", "--latency-ms",
    "--rate-limit-rps", "--webhook-drop-rate", "--webhook-duplicate-rate", "--webhook-reorder",
    "--webhook-delay-ms",
]


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    """Every option of SPEC section 7 appears in --help."""
    with pytest.raises(SystemExit) as exited:
        main(["sandbox", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for option in OPTIONS:
        assert option in text


def test_bad_hmac_key_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A key that is not base64 exits 2 with one line naming the option."""
    assert main(["sandbox", "--hmac-key", "not base64!"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "spotsync sandbox: --hmac-key must be base64"


def test_bad_latency_range_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """A latency range with min above max is refused before anything starts."""
    assert main(["sandbox", "--latency-ms", "50,10"]) == 2
    assert "latency_ms" in capsys.readouterr().err
