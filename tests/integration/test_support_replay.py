"""A whole-log replay of a realistic log in a SQLite file, in worker processes or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.logs import fill
from eventstore import RecordedEvent, open_store
from handlers.decisions import Command, SendContract, decide
from handlers.replay import ContractReplay, replay_log
from projections.contract import ContractState

pytestmark = pytest.mark.anyio


def no_send(state: ContractState | None, event: RecordedEvent) -> list[Command]:
    """A changed decision table (module level, so worker processes can load it)."""
    return [c for c in decide(state, event) if not isinstance(c, SendContract)]


def _summary(replay: ContractReplay) -> tuple[Any, ...]:
    steps = [(s.event.position, s.event.data, s.recorded, s.differences) for s in replay.steps]
    return replay.external_id, steps, replay.state


async def test_worker_processes_replay_the_log_as_this_process_does(tmp_path: Path) -> None:
    """Name ranges replayed in worker processes yield the same contracts, in the same
    order, with the same differences and states as one process reading every stream."""
    async with await open_store(str(tmp_path / "spotsync.db")) as store:
        await fill(store, 4000, whole=True)
        here = [_summary(r) async for r in replay_log(store, decide_fn=no_send, workers=0)]
        spread = [_summary(r) async for r in replay_log(store, decide_fn=no_send, workers=2)]
    assert spread == here
    assert len(here) > 100
    assert sum(len(steps) for _, steps, _ in here) > 10


async def test_a_summary_of_the_log_leaves_the_states_behind(tmp_path: Path) -> None:
    """states=False (what ``spotsync replay`` of a whole log asks): the same contracts and
    differences, from worker processes too, without each contract's state."""
    async with await open_store(str(tmp_path / "spotsync.db")) as store:
        await fill(store, 2000, whole=True)
        full = [_summary(r) async for r in replay_log(store, decide_fn=no_send, workers=0)]
        bare = [
            _summary(r)
            async for r in replay_log(store, decide_fn=no_send, workers=2, states=False)
        ]
    assert all(state is not None for _, _, state in full)
    assert bare == [(external_id, steps, None) for external_id, steps, _ in full]
