"""The event envelope (SPEC section 6): what is appended, what is read back, and its JSON form.

The JSON form is also the JSONL export format, one envelope a line.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

import orjson

# SPEC section 6. The handlers' own events, around calls to SpotDraft and to the sink,
# are "api" (older logs may hold "sink" for the sink's: read, never written now).
Source = Literal["webhook", "api", "intake", "reconciler", "operator"]


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562): the Unix time in milliseconds, then random bits.

    Ids made close in time sort close together, so the stores' unique index of event
    ids grows at one end, as the log does. A random (v4) id lands on a random page of
    that index: on a log of a million events, appends ran less than half as fast.
    """
    value = (time.time_ns() // 1_000_000) << 80 | _entropy.bits80()
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # variant: RFC 9562
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Entropy:
    """The operating system's random bytes, read a few kilobytes at a time.

    ``os.urandom`` for each id is a system call that lets go of the GIL: on the event
    loop's thread, while the store's writer thread waits for the GIL, each one cost the
    loop about 15 µs of getting it back (a webhook's whole append costs 40). A child
    forked from this process reads its own bytes: it must never make the parent's ids.
    """

    _SIZE = 4000  # bytes read at once: 400 ids
    _lock: threading.Lock
    _pool: bytes
    _at: int

    def __init__(self) -> None:
        self.forget()

    def bits80(self) -> int:
        with self._lock:
            at = self._at
            if at + 10 > len(self._pool):
                self._pool, at = os.urandom(self._SIZE), 0
            self._at = at + 10
            return int.from_bytes(self._pool[at : at + 10])

    def forget(self) -> None:
        """Start over: no bytes read yet (a new lock too: a fork copies a held one)."""
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0


_entropy = _Entropy()
os.register_at_fork(after_in_child=_entropy.forget)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. ``event_id`` makes the append idempotent: a stored id is a no-op.

    ``recorded_at`` is for import alone: the time the event was recorded in the store it
    was exported from, kept so that the copy reads as the original did. Left None, the
    event is recorded at its commit.
    """

    type: str
    data: Mapping[str, Any]
    source: Source
    event_id: str = field(default_factory=new_event_id)
    causation_id: str | None = None
    correlation_id: str | None = None
    recorded_at: datetime | None = None

    def metadata(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "causation_id": self.causation_id,
            "correlation_id": self.correlation_id,
            "source": self.source,
        }


class RecordedEvent(NamedTuple):
    """An event as stored: its gap-free global ``position`` and its ``version`` in the stream.

    A named tuple, not a frozen dataclass: a long read builds millions, and a tuple is
    made in one step where a frozen dataclass sets each field through ``object.__setattr__``
    (a tenth of a whole-log replay went to that).
    """

    position: int
    stream: str
    version: int
    type: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any]
    recorded_at: datetime

    @property
    def event_id(self) -> str:
        return str(self.metadata["event_id"])

    @property
    def source(self) -> str:
        return str(self.metadata.get("source"))

    @property
    def causation_id(self) -> str | None:
        value = self.metadata.get("causation_id")
        return None if value is None else str(value)

    @property
    def correlation_id(self) -> str | None:
        value = self.metadata.get("correlation_id")
        return None if value is None else str(value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "stream": self.stream,
            "version": self.version,
            "type": self.type,
            "data": self.data,
            "metadata": self.metadata,
            "recorded_at": format_timestamp(self.recorded_at),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RecordedEvent:
        return cls(
            position=int(raw["position"]),
            stream=str(raw["stream"]),
            version=int(raw["version"]),
            type=str(raw["type"]),
            data=raw["data"],
            metadata=raw["metadata"],
            recorded_at=parse_timestamp(str(raw["recorded_at"])),
        )

    @classmethod
    def from_json(cls, line: bytes | str) -> RecordedEvent:
        return cls.from_dict(orjson.loads(line))

    def as_new_event(self) -> NewEvent:
        """The same event, to append into another store: import keeps ids (so it is
        idempotent) and the time it was recorded."""
        meta = self.metadata
        return NewEvent(
            type=self.type,
            data=self.data,
            source=meta.get("source", "operator"),  # a person imported it
            event_id=str(meta["event_id"]),
            causation_id=meta.get("causation_id"),
            correlation_id=meta.get("correlation_id"),
            recorded_at=self.recorded_at,
        )


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a ``Z``: fixed width, so it also sorts as text."""
    # isoformat is several times faster than strftime; from UTC it ends "+00:00".
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text)  # takes the "Z" since Python 3.11
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode(value: Any) -> bytes:
    return orjson.dumps(value)


def decode(raw: bytes | str) -> Any:
    return orjson.loads(raw)
