"""The in-memory backend: the fast fake for unit tests, with the same contract as the others."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import anyio

from eventstore.base import (
    AppendResult,
    Document,
    DocumentWrite,
    EventStore,
    StreamRow,
    split_points,
    stream_rows,
)
from eventstore.envelope import NewEvent, RecordedEvent, utcnow
from eventstore.errors import ConcurrencyError, EventIdConflictError, EventStoreError


class MemoryEventStore(EventStore):
    """Everything in lists and dicts. Data is deep-copied in and out, as a database would."""

    def __init__(self) -> None:
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._by_id: dict[str, RecordedEvent] = {}
        self._checkpoints: dict[str, int] = {}
        self._documents: dict[str, dict[str, Document]] = {}
        self._appended = anyio.Event()
        self._closed = False

    async def append(
        self, stream: str, events: Sequence[NewEvent], *, expected_version: int | None
    ) -> AppendResult:
        self._check_open()
        if not events:
            raise ValueError("append needs at least one event")
        stored = [self._by_id.get(event.event_id) for event in events]
        if all(stored):
            return AppendResult(tuple(e for e in stored if e is not None), duplicate=True)
        if any(stored):
            raise EventIdConflictError("the batch mixes stored and new event ids")
        history = self._streams.setdefault(stream, [])
        if expected_version is not None and expected_version != len(history):
            raise ConcurrencyError(stream, expected_version, len(history))
        now = utcnow()
        recorded = []
        for event in events:
            entry = RecordedEvent(
                position=len(self._log) + 1,
                stream=stream,
                version=len(history) + 1,
                type=event.type,
                data=copy.deepcopy(dict(event.data)),
                metadata=event.metadata(),
                recorded_at=now if event.recorded_at is None else event.recorded_at,
            )
            self._log.append(entry)
            history.append(entry)
            self._by_id[event.event_id] = entry
            recorded.append(entry)
        self._appended.set()
        self._appended = anyio.Event()
        return AppendResult(tuple(recorded))

    async def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]:
        self._check_open()
        return list(self._streams.get(stream, [])[max(from_version, 1) - 1 :])

    async def read_all(
        self,
        *,
        from_position: int = 1,
        until_position: int | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        self._check_open()
        position = max(from_position, 1)
        while True:
            end = len(self._log) if until_position is None else min(until_position, len(self._log))
            page = self._log[position - 1 : min(end, position - 1 + page_size)]
            if not page:
                return
            for event in page:
                yield event
            position = page[-1].position + 1
            await anyio.lowlevel.checkpoint()

    async def read_streams(
        self,
        prefix: str,
        *,
        start: str | None = None,
        stop: str | None = None,
        until_position: int | None = None,
        decoded: bool = True,
        page_size: int = 1000,
        blocking: bool = False,
    ) -> AsyncIterator[list[StreamRow]]:
        self._check_open()
        names = sorted(
            name
            for name in self._streams
            if name.startswith(prefix)
            and (start is None or name >= start)
            and (stop is None or name < stop)
        )
        page: list[StreamRow] = []
        for name in names:
            page.extend(stream_rows(self._streams[name], until_position, decoded))
            while len(page) >= page_size:
                yield page[:page_size]
                del page[:page_size]
                await anyio.lowlevel.checkpoint()
        if page:
            yield page

    async def split_streams(self, prefix: str, parts: int) -> list[str]:
        return split_points(
            sorted(e.stream for e in self._log if e.stream.startswith(prefix)), parts
        )

    async def last_position(self) -> int:
        return len(self._log)

    async def stream_version(self, stream: str) -> int:
        return len(self._streams.get(stream, []))

    async def wait_for_append(self, after_position: int) -> None:
        while len(self._log) <= after_position:
            await self._appended.wait()

    async def load_checkpoint(self, name: str) -> int:
        return self._checkpoints.get(name, 0)

    async def save_checkpoint(self, name: str, position: int) -> None:
        self._checkpoints[name] = position

    async def commit_projection(
        self,
        name: str,
        position: int,
        writes: Sequence[DocumentWrite],
        *,
        blocking: bool = False,  # nothing to wait for
    ) -> None:
        self._check_open()
        # Copy everything before changing anything: a write that fails leaves no trace.
        copies = [(w, None if w.doc is None else copy.deepcopy(w.doc)) for w in writes]
        for write, doc in copies:
            collection = self._documents.setdefault(write.collection, {})
            if doc is None:
                collection.pop(write.key, None)
            else:
                collection[write.key] = doc
        self._checkpoints[name] = position

    async def get_document(self, collection: str, key: str) -> Document | None:
        doc = self._documents.get(collection, {}).get(key)
        return None if doc is None else copy.deepcopy(doc)

    async def get_documents(self, collection: str, keys: Sequence[str]) -> dict[str, Document]:
        docs = self._documents.get(collection, {})
        return {key: copy.deepcopy(docs[key]) for key in keys if key in docs}

    async def document_keys(
        self,
        collection: str,
        *,
        start: str = "",
        stop: str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        self._check_open()
        keys = self._documents.get(collection, {})
        found = sorted(k for k in keys if k >= start and (stop is None or k < stop))
        return found if limit is None else found[:limit]

    async def query_documents(
        self,
        collection: str,
        *,
        equals: Mapping[str, str] | None = None,
        at_least: Mapping[str, str] | None = None,
        after_key: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Document]]:
        rows: list[tuple[str, Document]] = []
        for key in sorted(self._documents.get(collection, {})):
            if after_key is not None and key <= after_key:
                continue
            doc = self._documents[collection][key]
            if not _matches(doc, equals or {}, at_least or {}):
                continue
            rows.append((key, copy.deepcopy(doc)))
            if limit is not None and len(rows) >= limit:
                break
        return rows

    async def drop_projection(self, name: str, collections: Sequence[str]) -> None:
        for collection in collections:
            self._documents.pop(collection, None)
        self._checkpoints.pop(name, None)

    async def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise EventStoreError("the store is closed")


def _matches(doc: Document, equals: Mapping[str, str], at_least: Mapping[str, str]) -> bool:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return all(text(doc.get(f)) == v for f, v in equals.items()) and all(
        (t := text(doc.get(f))) is not None and t >= v for f, v in at_least.items()
    )
