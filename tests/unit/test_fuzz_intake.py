"""POST /v1/contracts and /send under hostile bodies: a clear 4xx or an idempotent accept.

Bodies are the guide's request with values swapped for arbitrary JSON anywhere in the
tree (huge numbers, NUL, deep nesting, wrong types), or arbitrary bytes. Whatever
comes in, the answer is never a 5xx, and a request that was accepted is accepted again,
with the same answer, when it is sent once more (the source system's retry).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import anyio
import httpx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from daemon.demo_contracts import ACME
from daemon.http import create_app
from eventstore import MemoryEventStore
from tests.unit.test_http_webhooks import TOKEN, Config

AUTH = {"authorization": f"Bearer {TOKEN}"}
ANSWERS = {200, 202, 400, 404, 409, 413, 422}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8")),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


PATHS = [p for p in _paths(ACME) if p]
_MISSING = object()


def _child(parent: Any, step: Any) -> Any:
    """``parent[step]`` when an earlier change left that place in the tree, else _MISSING."""
    if isinstance(parent, dict) and isinstance(step, str) and step in parent:
        return parent[step]
    if isinstance(parent, list) and isinstance(step, int) and step < len(parent):
        return parent[step]
    return _MISSING


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    request = copy.deepcopy(ACME)
    request["external_metadata"]["id"] = draw(
        st.text(min_size=1, max_size=12) | st.just("crm-fuzz-1")
    )
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=3)):
        parent: Any = request
        for step in path[:-1]:
            parent = _child(parent, step)
        if _child(parent, path[-1]) is not _MISSING:
            parent[path[-1]] = draw(json_values)
    if draw(st.booleans()):
        request["send_to_counterparties"] = draw(json_values | st.just({}))
    return json.dumps(request, ensure_ascii=draw(st.booleans())).encode()


bodies = (
    mutated_requests()
    | st.binary(max_size=256)
    | st.integers(1, 5000).map(lambda d: b"[" * d + b"]" * d)
    | st.sampled_from([b"1e400", b'{"a": 1e400}', b"", b"null", b'"\\ud800"', b"\xff"])
)


async def _exchange(body: bytes) -> None:
    app = create_app(MemoryEventStore(), Config(), max_body_bytes=1 << 16)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
        headers = {**AUTH, "content-type": "application/json"}
        first = await client.post("/v1/contracts", content=body, headers=headers)
        event(f"intake {first.status_code}")
        assert first.status_code in ANSWERS, (first.status_code, first.text)
        assert first.json()["error"]["code"] if first.status_code >= 400 else True
        if first.status_code == 202:
            again = await client.post("/v1/contracts", content=body, headers=headers)
            assert again.status_code == 200, again.text
            assert again.json() == first.json()
            url = first.json()["url"]
            assert (await client.get(url, headers=AUTH)).status_code in (200, 404)
            send = await client.post(f"{url}/send", content=body, headers=headers)
            assert send.status_code in ANSWERS, (send.status_code, send.text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_hostile_contract_requests_get_a_clear_answer_and_retries_are_idempotent(
    body: bytes,
) -> None:
    """No body makes intake answer 5xx; an accepted request sent again is 200, same answer."""
    anyio.run(_exchange, body)
