"""Logging: JSON lines with bound contract context, and secrets redacted as a last defence."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from daemon.logging import REDACTED, configure_logging, contract_context

SECRET = "s3cr3t-hmac-key-value"
TOKEN = "api-token-0123456789"


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield buffer
    structlog.reset_defaults()
    root.handlers[:], root.level = saved[0], saved[1]


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_lines_carry_the_bound_contract_context(output: io.StringIO) -> None:
    """Inside contract_context every line names external_id, stream and position."""
    configure_logging(json=True, stream=output)
    log = structlog.get_logger("test")
    with contract_context(external_id="deal-1", stream="contract-deal-1", position=17):
        log.info("handled", activity="CONTRACT_EXECUTED")
    log.info("outside")
    inside, outside = lines(output)
    assert inside["event"] == "handled"
    assert (inside["external_id"], inside["stream"], inside["position"]) == (
        "deal-1",
        "contract-deal-1",
        17,
    )
    assert inside["level"] == "info"
    assert "timestamp" in inside
    assert "external_id" not in outside


def test_configured_secrets_are_redacted_everywhere(output: io.StringIO) -> None:
    """A secret in a message, a nested value or an exception never reaches the output."""
    configure_logging(json=True, secrets=[SECRET, TOKEN, None], stream=output)
    log = structlog.get_logger("test")
    log.info(f"key is {SECRET}", nested={"list": [f"Bearer {TOKEN}"]})
    try:
        raise RuntimeError(f"header was {TOKEN}")
    except RuntimeError:
        log.exception("failed")
    text = output.getvalue()
    assert SECRET not in text
    assert TOKEN not in text
    assert text.count(REDACTED) >= 3


def test_secret_named_keys_are_masked(output: io.StringIO) -> None:
    """Values under keys such as client_secret or authorization are masked whatever they are."""
    configure_logging(json=True, stream=output)
    structlog.get_logger("test").info(
        "call", client_secret="abc", headers={"Authorization": "Bearer xyz", "Accept": "json"}
    )
    [line] = lines(output)
    assert line["client_secret"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "json"}


def test_standard_library_loggers_are_rendered_and_redacted_too(output: io.StringIO) -> None:
    """A library's logging call comes out as the same JSON, with secrets masked."""
    configure_logging(json=True, secrets=[SECRET], stream=output)
    logging.getLogger("some.library").warning("connecting with %s", SECRET)
    [line] = lines(output)
    assert line["event"] == f"connecting with {REDACTED}"
    assert line["level"] == "warning"


def test_console_mode_is_plain_text(output: io.StringIO) -> None:
    """For development the output is readable text, not JSON, still redacted."""
    configure_logging(json=False, secrets=[SECRET], stream=output)
    structlog.get_logger("test").info("hello", value=SECRET)
    text = output.getvalue()
    assert "hello" in text
    assert SECRET not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
