"""GET /v1/contracts[/{id}[/events]]: projection views, filters, pagination, auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from daemon.http import create_app, queries
from daemon.http.queries import CHANGED_AT_MOST
from eventstore import DocumentWrite, MemoryEventStore, NewEvent
from projections.runner import CONTRACT_INDEX, index_key

TOKEN = "query-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass(frozen=True)
class Config:
    api_token: str | None = TOKEN
    hmac_key: str | None = None


def projection(external_id: str, status: str, sync: str, updated_at: str) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "integration_name": "HubSpot",
        "record_type": "Deal",
        "spotdraft": {"id": "T-1", "contract_id": 1, "contract_link": "https://x"},
        "status": status,
        "sync": sync,
        "key_pointers": {},
        "document": None,
        "error": None,
        "last_position": 1,
        "updated_at": updated_at,
        "_handled": ["private bookkeeping"],
    }


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore()


@pytest.fixture
async def client(store: MemoryEventStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(store, Config()))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://daemon", headers=AUTH
    ) as client:
        yield client


async def project(store: MemoryEventStore, *docs: dict[str, Any]) -> None:
    """The rows, and their index rows, as the projection writes them."""
    writes = [DocumentWrite("contracts", d["external_id"], d) for d in docs]
    writes += [
        DocumentWrite(CONTRACT_INDEX, index_key(field, d[field], d["external_id"]), {})
        for d in docs
        for field in ("status", "sync", "updated_at")
    ]
    await store.commit_projection("test", 1, writes)


async def request(store: MemoryEventStore, external_id: str) -> None:
    data = {
        "external_id": external_id,
        "request": {"external_metadata": {"id": external_id, "integration_name": "SAP"}},
        "send": None,
        "fingerprint": "0" * 64,
    }
    event = NewEvent(type="ContractRequested", data=data, source="intake")
    await store.append(f"contract-{external_id}", [event], expected_version=0)


@pytest.mark.anyio
async def test_contract_view_hides_private_keys(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """The projection is served as stored, minus its "_" keys."""
    await project(store, projection("d-1", "EXECUTED", "synced", "2026-11-24T10:00:00.000000Z"))
    response = await client.get("/v1/contracts/d-1")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "EXECUTED"
    assert body["sync"] == "synced"
    assert "_handled" not in body


@pytest.mark.anyio
async def test_requested_but_not_projected_is_pending(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """A stored request the projection has not reached yet is shown as pending, not 404."""
    await request(store, "d-2")
    response = await client.get("/v1/contracts/d-2")
    assert response.status_code == 200
    body = response.json()
    assert body["sync"] == "pending"
    assert body["integration_name"] == "SAP"
    assert body["last_position"] == 1


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["nobody", "..%2F..%2Fetc", "%00", "a%2Fb", "x" * 300, "%E2%82"])
async def test_unknown_or_odd_ids_are_json_404(client: httpx.AsyncClient, path: str) -> None:
    """Any id that names no contract is a JSON 404, never a 5xx."""
    response = await client.get("/v1/contracts/" + path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/v1/contracts/", "/healthz/", "/v1/contracts/d-1/events/"])
async def test_a_trailing_slash_is_a_json_404_not_a_redirect(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.anyio
async def test_list_filters_by_status_sync_and_updated_since(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """Each filter narrows the list; private keys never show."""
    await project(
        store,
        projection("a", "EXECUTED", "synced", "2026-11-20T00:00:00.000000Z"),
        projection("b", "SIGN", "sent", "2026-11-22T00:00:00.000000Z"),
        projection("c", "EXECUTED", "executed", "2026-11-24T00:00:00.000000Z"),
    )

    async def ids(query: str) -> list[str]:
        response = await client.get("/v1/contracts" + query)
        assert response.status_code == 200
        assert all("_handled" not in c for c in response.json()["contracts"])
        return [c["external_id"] for c in response.json()["contracts"]]

    assert await ids("") == ["a", "b", "c"]
    assert await ids("?status=EXECUTED") == ["a", "c"]
    assert await ids("?sync=sent") == ["b"]
    assert await ids("?updated_since=2026-11-21T00:00:00Z") == ["b", "c"]
    assert await ids("?updated_since=2026-11-23T02:00:00%2B02:00") == ["c"]
    assert await ids("?status=EXECUTED&updated_since=2026-11-21") == ["c"]


@pytest.mark.anyio
@pytest.mark.parametrize("changed_at_most", [CHANGED_AT_MOST, 4])
async def test_a_poll_for_what_changed_pages_through_exactly_the_changed_contracts(
    client: httpx.AsyncClient,
    store: MemoryEventStore,
    monkeypatch: pytest.MonkeyPatch,
    changed_at_most: int,
) -> None:
    """updated_since, alone or with a filter, pages in external id order through the
    contracts changed from then on, whether they are found through the index of update
    times (few changed) or by reading the rows (more than CHANGED_AT_MOST)."""
    monkeypatch.setattr(queries, "CHANGED_AT_MOST", changed_at_most)
    docs = [
        projection(
            f"k{(n * 7) % 30:02}",  # ids in another order than their times
            "EXECUTED" if n % 3 else "SIGN",
            "synced" if n % 3 else "sent",
            f"2026-11-24T10:{n:02}:00.000000Z",
        )
        for n in range(30)
    ]
    await project(store, *docs)

    async def pages(query: str) -> list[str]:
        seen: list[str] = []
        cursor: str | None = None
        while True:
            response = await client.get(
                "/v1/contracts" + query + "&limit=3" + (f"&cursor={cursor}" if cursor else "")
            )
            assert response.status_code == 200
            seen += [c["external_id"] for c in response.json()["contracts"]]
            cursor = response.json()["next_cursor"]
            if cursor is None:
                return seen

    for minute in (0, 21, 25, 29, 30):
        since = f"2026-11-24T10:{minute:02}:00Z"
        changed = [d for d in docs if d["updated_at"] >= since.replace("Z", ".000000Z")]
        assert await pages(f"?updated_since={since}") == sorted(d["external_id"] for d in changed)
        signing = sorted(d["external_id"] for d in changed if d["status"] == "SIGN")
        assert await pages(f"?updated_since={since}&status=SIGN") == signing


@pytest.mark.anyio
async def test_list_pages_with_an_opaque_cursor(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """limit and next_cursor walk the whole list once, in key order."""
    await project(
        store,
        *(
            projection(f"k{i:02}", "DRAFT", "created", "2026-11-24T00:00:00.000000Z")
            for i in range(7)
        ),
    )
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/v1/contracts", params=params)).json()
        seen += [c["external_id"] for c in body["contracts"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"k{i:02}" for i in range(7)]
    assert pages == 3


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("status=SIGNED", "status"),
        ("sync=done", "sync"),
        ("updated_since=yesterday", "updated_since"),
        ("cursor=%25%25%25", "cursor"),
        ("cursor=a%2Bb", "cursor"),
    ],
)
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, query: str, field: str
) -> None:
    """Malformed filters are named in a 422."""
    response = await client.get("/v1/contracts?" + query)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == field


@pytest.mark.anyio
async def test_events_are_the_stream_in_order(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """The events endpoint returns the contract's envelopes (SPEC section 6) by version."""
    await request(store, "d-3")
    await store.append("other", [NewEvent("X", {}, "operator")], expected_version=None)
    await store.append(
        "contract-d-3", [NewEvent("SendRequested", {"body": {}}, "intake")], expected_version=1
    )
    response = await client.get("/v1/contracts/d-3/events")
    assert response.status_code == 200
    events = response.json()["events"]
    assert [(e["version"], e["position"], e["type"]) for e in events] == [
        (1, 1, "ContractRequested"),
        (2, 3, "SendRequested"),
    ]
    assert set(events[0]) == {
        "position",
        "stream",
        "version",
        "type",
        "data",
        "metadata",
        "recorded_at",
        "summary",
    }
    assert events[1]["summary"] == "send requested by intake"
    assert events[0]["metadata"]["source"] == "intake"
    later = await client.get("/v1/contracts/d-3/events?from_version=2")
    assert [e["version"] for e in later.json()["events"]] == [2]


@pytest.mark.anyio
async def test_a_long_history_comes_in_pages(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """With ``limit``, each page names the from_version of the next, and the last none;
    the pages together are the whole stream, with the summaries it has in one piece."""
    await request(store, "d-4")
    webhook = {"activity": "CONTRACT_SIGNED", "contract_status": "SIGN", "raw_body": "{}"}
    for _ in range(6):
        await store.append(
            "contract-d-4", [NewEvent("WebhookReceived", webhook, "webhook")], expected_version=None
        )
    whole = (await client.get("/v1/contracts/d-4/events")).json()
    assert whole["next_from_version"] is None
    pages, version = [], 1
    while version is not None:
        page = (await client.get(f"/v1/contracts/d-4/events?from_version={version}&limit=3")).json()
        pages.append([e["version"] for e in page["events"]])
        version = page["next_from_version"]
    assert pages == [[1, 2, 3], [4, 5, 6], [7]]
    second = await client.get("/v1/contracts/d-4/events?from_version=4&limit=1")
    assert second.json()["events"][0]["summary"] == whole["events"][3]["summary"]
    assert "duplicate" in second.json()["events"][0]["summary"]
    bad = await client.get("/v1/contracts/d-4/events?limit=0")
    assert bad.status_code == 422
    assert bad.json()["error"]["fields"][0]["field"] == "limit"


@pytest.mark.anyio
async def test_events_of_an_unknown_contract_are_404(client: httpx.AsyncClient) -> None:
    """No stream, no events: 404."""
    assert (await client.get("/v1/contracts/nobody/events")).status_code == 404


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/contracts"),
        ("POST", "/v1/contracts"),
        ("GET", "/v1/contracts/d-1"),
        ("POST", "/v1/contracts/d-1/send"),
        ("GET", "/v1/contracts/d-1/events"),
    ],
)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic cXVlcnk=", "Bearer "])
async def test_every_v1_route_needs_the_bearer_token(
    store: MemoryEventStore, method: str, path: str, header: str | None
) -> None:
    """Without the right token: 401 with WWW-Authenticate, and the token is never echoed."""
    await project(store, projection("d-1", "DRAFT", "created", "2026-11-24T00:00:00.000000Z"))
    transport = httpx.ASGITransport(app=create_app(store, Config()))
    headers = {} if header is None else {"Authorization": header}
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
        response = await client.request(method, path, headers=headers, json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"
    assert TOKEN not in response.text
