"""What one HTTP attempt looked like, in a form that can be stored as an event.

Headers are never recorded (they carry the credentials). Request bodies are spotsync's
own payloads; keys that look secret are masked anyway, and long strings (base64
attachments, big texts) are cut so one event stays small.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

MAX_STRING = 2_000  # characters kept of any one string in a recorded body
MAX_TEXT_BODY = 4_000  # characters kept of a body that is not JSON
MAX_ITEMS = 500  # items kept of any one list
REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"secret|password|passwd|token|api[_-]?key|authorization|hmac", re.I)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP attempt: what was asked, what came back (or why nothing did), and how fast."""

    operation: str
    method: str
    path: str
    request_body: Any
    status: int | None
    response_body: Any
    latency_ms: float
    attempt: int
    error: str | None = None
    retry_after: float | None = None

    def to_event_data(self) -> dict[str, Any]:
        """A JSON-safe dict, the ``data`` of an API-response event."""
        return {
            "operation": self.operation,
            "method": self.method,
            "path": self.path,
            "request_body": self.request_body,
            "status": self.status,
            "response_body": self.response_body,
            "latency_ms": round(self.latency_ms, 3),
            "attempt": self.attempt,
            "error": self.error,
            "retry_after": self.retry_after,
        }


@dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """A call's parsed answer and every attempt it took, in order."""

    value: T
    exchanges: tuple[Exchange, ...]

    @property
    def last(self) -> Exchange:
        return self.exchanges[-1]


@dataclass(frozen=True, slots=True)
class DownloadedFile:
    """A file stored whole on disk: where it is, its sha256 (hex) and its size in bytes."""

    path: Path
    sha256: str
    bytes: int


def recordable(value: Any, *, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` with secret-looking keys masked and long values cut."""
    if depth > 32:
        return "[too deep]"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return cut(value, MAX_STRING)
    if isinstance(value, Mapping):
        return {
            str(key): REDACTED
            if _SECRET_KEY.search(str(key))
            else recordable(item, depth=depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        kept = [recordable(item, depth=depth + 1) for item in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            kept.append(f"[{len(value) - MAX_ITEMS} more items]")
        return kept
    return cut(repr(value), MAX_STRING)


def cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more characters]"
