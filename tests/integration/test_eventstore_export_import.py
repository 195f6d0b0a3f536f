"""`spotsync export` and `spotsync import` move a log between SQLite files intact."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import anyio
import pytest

from daemon.cli import main
from eventstore import NewEvent, RecordedEvent, open_store


def seed(path: Path) -> list[RecordedEvent]:
    """A small log: two contracts and an intake stream, interleaved."""

    async def write() -> list[RecordedEvent]:
        async with await open_store(str(path)) as store:
            for n in range(3):
                for stream in ("contract-deal-1", "contract-deal-2", "intake"):
                    await store.append(
                        stream,
                        [NewEvent("Happened", {"n": n, "text": "ünï"}, "api",
                                  causation_id=f"c{n}")],
                        expected_version=n,
                    )
            await store.append(
                "contract-deal-1",
                [NewEvent("Batch", {"i": i}, "webhook") for i in range(3)],
                expected_version=3,
            )
            return [event async for event in store.read_all()]

    return anyio.run(write)


def read_log(path: Path) -> list[RecordedEvent]:
    async def read() -> list[RecordedEvent]:
        async with await open_store(str(path)) as store:
            return [event async for event in store.read_all()]

    return anyio.run(read)


def essence(events: list[RecordedEvent]) -> list[tuple[object, ...]]:
    return [(e.stream, e.version, e.type, e.data, dict(e.metadata)) for e in events]


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "source.db"
    monkeypatch.setenv("SPOTSYNC_DATABASE", str(path))
    return path


def test_export_then_import_reproduces_the_log(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An import of an export into a fresh file gives the same streams, versions and payloads."""
    original = seed(source)
    assert main(["export"]) == 0
    exported = capsys.readouterr().out
    lines = [json.loads(line) for line in exported.splitlines()]
    assert [line["position"] for line in lines] == list(range(1, len(original) + 1))
    assert set(lines[0]) == {"position", "stream", "version", "type", "data", "metadata",
                             "recorded_at"}
    dump = tmp_path / "log.jsonl"
    dump.write_text(exported)

    target = tmp_path / "target.db"
    monkeypatch.setenv("SPOTSYNC_DATABASE", str(target))
    assert main(["import", str(dump)]) == 0
    assert f"imported {len(original)} events" in capsys.readouterr().err
    copied = read_log(target)
    assert essence(copied) == essence(original)
    assert [e.position for e in copied] == [e.position for e in original]
    assert [e.recorded_at for e in copied] == [e.recorded_at for e in original]


def test_export_to_a_file_is_owner_only_and_filters_by_external_id(
    source: Path, tmp_path: Path
) -> None:
    """--output writes an owner-only file; --external-id keeps only contract-ID's stream."""
    seed(source)
    out = tmp_path / "deal-1.jsonl"
    assert main(["export", "--external-id", "deal-1", "--output", str(out)]) == 0
    events = [RecordedEvent.from_json(line) for line in out.read_bytes().splitlines()]
    assert {e.stream for e in events} == {"contract-deal-1"}
    assert [e.version for e in events] == [1, 2, 3, 4, 5, 6]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_import_refuses_a_store_that_has_events_unless_forced(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Importing into a non-empty store is one clear error; --force adds only what is new."""
    original = seed(source)
    dump = tmp_path / "log.jsonl"
    assert main(["export", "--output", str(dump)]) == 0
    capsys.readouterr()
    assert main(["import", str(dump)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "already holds" in error
    assert "--force" in error
    assert main(["import", "--force", str(dump)]) == 0
    assert f"({len(original)} were already stored)" in capsys.readouterr().err
    assert essence(read_log(source)) == essence(original)


def test_import_names_the_broken_line(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed line stops the import with the file and line number, not a traceback."""
    dump = tmp_path / "broken.jsonl"
    good = {"position": 1, "stream": "s", "version": 1, "type": "T", "data": {},
            "metadata": {"event_id": "e1", "source": "api"},
            "recorded_at": "2026-11-24T10:00:00.000000Z"}
    dump.write_text(json.dumps(good) + "\n{not json\n")
    assert main(["import", str(dump)]) == 2
    assert f"{dump}:2: not an event envelope" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"data": "oops"}, "data must be a JSON object"),
        ({"metadata": ["e9"]}, "metadata must be a JSON object"),
        ({"metadata": {"source": "api"}}, "metadata.event_id must be a non-empty string"),
        ({"stream": "contract-../../etc"}, "does not name a valid external id"),
        ({"type": ""}, "stream and type must not be empty"),
    ],
)
def test_an_unfit_line_anywhere_imports_nothing(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    change: dict[str, object], reason: str,
) -> None:
    """A line no store should hold (it could never be taken back out) is named with the
    reason, and nothing of the file is imported, however many good lines come first."""
    lines = [
        {"position": n, "stream": f"contract-deal-{n}", "version": 1, "type": "T",
         "data": {"n": n}, "metadata": {"event_id": f"e{n}", "source": "api"},
         "recorded_at": "2026-11-24T10:00:00.000000Z"}
        for n in range(1, 301)
    ]
    lines[250].update(change)
    dump = tmp_path / "unfit.jsonl"
    dump.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["import", str(dump)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"{dump}:251: not an event envelope (" in error
    assert reason in error
    assert read_log(source) == []


def test_import_stops_at_a_stream_the_store_holds_otherwise(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A stream the store already holds with other events stops a forced import with one
    line naming it; the events before it in the file are stored."""
    original = seed(source)
    dump = tmp_path / "log.jsonl"
    assert main(["export", "--output", str(dump)]) == 0
    target = tmp_path / "target.db"
    monkeypatch.setenv("SPOTSYNC_DATABASE", str(target))

    async def occupy() -> None:
        async with await open_store(str(target)) as store:
            await store.append("intake", [NewEvent("Other", {}, "api")], expected_version=0)

    anyio.run(occupy)
    capsys.readouterr()
    assert main(["import", "--force", str(dump)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "stream 'intake' is at version 1 in the store" in error
    assert "continues it at version 1" in error
    stored = read_log(target)
    assert essence(stored[1:3]) == essence(original[:2])  # the two events before intake's
    # Nothing after it: not even intake's next event, which fits the store's version 1.
    assert len(stored) == 3


def test_export_without_a_store_says_so(
    source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exporting from a path with no database fails with one line instead of creating one."""
    assert main(["export"]) == 2
    assert "no event store at" in capsys.readouterr().err
    assert not source.exists()


def test_export_of_an_unknown_external_id_says_so_and_writes_nothing(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped id is one line and a failing exit, not an empty file that looks done."""
    seed(source)
    out = tmp_path / "typo.jsonl"
    assert main(["export", "--external-id", "deal-l", "--output", str(out)]) == 2
    assert "no contract has external id 'deal-l' in this store" in capsys.readouterr().err
    assert not out.exists()
