"""structlog configuration: JSON lines for ``spotsync run``, readable console output for dev.

Every event passes, last before rendering, through ``SecretRedactor``: the configured
secrets (API token, client secret, HMAC key, sink secret) are replaced wherever they
appear, and values under secret-looking keys are masked. Code should never log a
secret in the first place; this is the last line of defence, e.g. for an exception
message that quotes a header.

Context is bound per task with contextvars::

    with contract_context(external_id="deal-1", stream="contract-deal-1", position=17):
        log.info("handled")          # carries external_id, stream and position
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO, cast

import orjson
import structlog
from structlog.contextvars import bound_contextvars
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[REDACTED]"
_SECRET_KEYS = re.compile(
    r"(secret|token|password|passwd|authorization|hmac_?key|api_?key|client-secret)", re.I
)
# Shorter "secrets" would mask ordinary words; real ones are long random strings.
_MIN_SECRET_LENGTH = 6
# Keys structlog's ProcessorFormatter uses internally and removes before rendering.
_PROCESSOR_META = frozenset({"_record", "_from_structlog"})
_NOISY_LIBRARIES = ("httpx", "httpcore", "hypercorn", "asyncio", "aiosqlite", "asyncpg")


class SecretRedactor:
    """Replace known secret values anywhere in an event, and mask secret-named keys."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        values = sorted(
            {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        clean = self._clean
        return {
            key: value if key in _PROCESSOR_META else clean(key, value)
            for key, value in event.items()
        }

    def _clean(self, key: object, value: Any) -> Any:
        # Every log line passes here: the key's verdict is cached, and the commonest
        # values (text, numbers, None) are told apart by exact type first.
        if value is None:
            return None
        if isinstance(key, str) and _is_secret_key(key):
            return REDACTED
        kind = type(value)
        if kind is str:
            return self._pattern.sub(REDACTED, value) if self._pattern else value
        if kind is int or kind is bool or kind is float:
            return value
        if isinstance(value, str):
            return self._pattern.sub(REDACTED, value) if self._pattern else value
        if isinstance(value, Mapping):
            return {k: self._clean(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(None, v) for v in value]
        if isinstance(value, bytes | bytearray):
            return self._clean(key, bytes(value).decode("utf-8", "replace"))
        if isinstance(value, int | float):  # bool is an int
            return value
        return self._clean(key, repr(value))


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    return _SECRET_KEYS.search(key) is not None


def _orjson_dumps(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=repr).decode("utf-8")


def _shared_processors(secrets: Iterable[str | None]) -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        # Exceptions become text before redaction, so their messages are redacted too.
        structlog.processors.format_exc_info,
        SecretRedactor(secrets),
    ]


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was set up
    (a caller that swaps it, such as a test capturing output, may close the old one)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    *,
    json: bool,
    level: int | str = logging.INFO,
    secrets: Iterable[str | None] = (),
    stream: TextIO | None = None,
    cache_loggers: bool = False,
) -> None:
    """Configure structlog (and the standard library's loggers, rendered the same way).

    ``json=True`` for ``spotsync run``: one JSON object a line. ``secrets``: every
    secret value configured (None entries are ignored). ``cache_loggers``: structlog's
    production setting (each logger is assembled once, not on every call); it makes
    later reconfiguration invisible to loggers already used, so tests leave it off.
    """
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    shared = _shared_processors(list(secrets))
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream or cast(TextIO, _Stderr())),
        cache_logger_on_first_use=cache_loggers,
    )
    handler = logging.StreamHandler(stream or _Stderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


@contextmanager
def contract_context(
    *, external_id: str | None = None, stream: str | None = None, position: int | None = None
) -> Iterator[None]:
    """Bind a contract's identity to every log line of the current task for the block."""
    fields: MutableMapping[str, Any] = {}
    if external_id is not None:
        fields["external_id"] = external_id
    if stream is not None:
        fields["stream"] = stream
    if position is not None:
        fields["position"] = position
    with bound_contextvars(**fields):
        yield
