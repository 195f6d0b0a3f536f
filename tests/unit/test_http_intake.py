"""POST /v1/contracts and POST /v1/contracts/{id}/send: validation, idempotency, conflicts."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from daemon.http import create_app
from eventstore import DocumentWrite, MemoryEventStore, NewEvent
from projections.contract import ContractState, fold

TOKEN = "intake-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ACME: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "data" / "acme_contract.json").read_text()
)


@dataclass(frozen=True)
class Config:
    api_token: str | None = TOKEN
    hmac_key: str | None = None


def acme(external_id: str = "hubspot-deal-10024", **extra: Any) -> dict[str, Any]:
    payload = copy.deepcopy(ACME)
    payload["external_metadata"]["id"] = external_id
    payload.update(extra)
    return payload


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


def fields_of(response: httpx.Response) -> set[str]:
    return {f["field"] for f in response.json()["error"]["fields"]}


@pytest.mark.anyio
async def test_new_request_is_stored_and_accepted(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """A valid request answers 202 with the contract's url, after ContractRequested is stored."""
    response = await client.post("/v1/contracts", json=acme())
    assert response.status_code == 202
    assert response.json() == {
        "external_id": "hubspot-deal-10024",
        "url": "/v1/contracts/hubspot-deal-10024",
    }
    [event] = await store.read_stream("contract-hubspot-deal-10024")
    assert event.type == "ContractRequested"
    assert event.source == "intake"
    assert event.data["request"] == ACME
    assert event.data["send"] is None
    assert len(event.data["fingerprint"]) == 64


@pytest.mark.anyio
async def test_send_instructions_are_stored_apart_from_the_request(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """send_to_counterparties is kept as "send", not inside the SpotDraft payload."""
    send = {"attachment_formats": ["PDF"], "to_emails": ["a@example.com"]}
    response = await client.post("/v1/contracts", json=acme(send_to_counterparties=send))
    assert response.status_code == 202
    [event] = await store.read_stream("contract-hubspot-deal-10024")
    assert event.data["send"] == send
    assert "send_to_counterparties" not in event.data["request"]


@pytest.mark.anyio
async def test_same_request_again_is_200_with_the_same_answer(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """Repeating a request (even with its keys reordered) answers 200 and stores nothing new."""
    first = await client.post("/v1/contracts", json=acme())
    reordered = dict(reversed(list(acme().items())))
    again = await client.post("/v1/contracts", json=reordered)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert await store.last_position() == 1


@pytest.mark.anyio
async def test_different_request_for_the_same_id_is_409(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """Another payload under a stored external id is a conflict, and nothing changes."""
    await client.post("/v1/contracts", json=acme())
    response = await client.post("/v1/contracts", json=acme(contract_name="Other"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert await store.last_position() == 1


@pytest.mark.anyio
async def test_invalid_request_names_every_bad_field(client: httpx.AsyncClient) -> None:
    """422 lists each problem by its path in the payload."""
    payload = acme()
    del payload["contract_template_id"]
    payload["contract_data"] = []
    party = payload["counter_party_details"][0]
    del party["organization_name"]
    party["poc_details"]["email"] = 42
    payload["signatories"] = [{"name": "A"}]
    payload["send_to_counterparties"] = {"attachment_formats": ["PNG"], "cc_emails": "x"}
    response = await client.post("/v1/contracts", json=payload)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert fields_of(response) == {
        "contract_template_id",
        "contract_data",
        "counter_party_details[0].organization_name",
        "counter_party_details[0].poc_details.email",
        "signatories[0].email",
        "signatories[0].is_counterparty_signatory",
        "send_to_counterparties.attachment_formats[0]",
        "send_to_counterparties.cc_emails",
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    "external_id",
    ["", " padded ", "a/b", "..", "nul\x00", "line\nbreak", "x" * 256, 17, None],
)
async def test_unusable_external_ids_are_422(
    client: httpx.AsyncClient, store: MemoryEventStore, external_id: Any
) -> None:
    """Empty, slashed, control-character, too long or non-text ids are refused by name."""
    response = await client.post("/v1/contracts", json=acme(external_id))
    assert response.status_code == 422
    assert fields_of(response) == {"external_metadata.id"}
    assert await store.last_position() == 0


@pytest.mark.anyio
@pytest.mark.parametrize("external_id", ["ünïcode-契約", "x" * 255, "a b", "%2F", "...", "?#&"])
async def test_odd_but_valid_ids_round_trip(client: httpx.AsyncClient, external_id: str) -> None:
    """Unicode, spaces and URL metacharacters are accepted, and their url finds them."""
    response = await client.post("/v1/contracts", json=acme(external_id))
    assert response.status_code == 202
    found = await client.get(response.json()["url"])
    assert found.status_code == 200
    assert found.json()["external_id"] == external_id


@pytest.mark.anyio
@pytest.mark.parametrize("body", [b"{", b"\xff", b"[]", b"null", b"7"])
async def test_non_object_bodies_are_refused(client: httpx.AsyncClient, body: bytes) -> None:
    """A body that is not JSON is 400; JSON that is not an object is 422."""
    response = await client.post("/v1/contracts", content=body)
    assert response.status_code in (400, 422)
    assert "error" in response.json()


@pytest.mark.anyio
async def test_send_is_accepted_once(client: httpx.AsyncClient, store: MemoryEventStore) -> None:
    """The first send answers 202 and stores SendRequested; a second one is 409."""
    await client.post("/v1/contracts", json=acme("deal-5"))
    response = await client.post("/v1/contracts/deal-5/send", json={"subject": "Please sign"})
    assert response.status_code == 202
    events = await store.read_stream("contract-deal-5")
    assert events[-1].type == "SendRequested"
    assert events[-1].data == {"body": {"subject": "Please sign"}}
    again = await client.post("/v1/contracts/deal-5/send")
    assert again.status_code == 409


@pytest.mark.anyio
async def test_send_without_a_body_sends_defaults(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """An empty body is an empty send_to_counterparties body."""
    await client.post("/v1/contracts", json=acme("deal-6"))
    assert (await client.post("/v1/contracts/deal-6/send")).status_code == 202
    assert (await store.read_stream("contract-deal-6"))[-1].data == {"body": {}}


@pytest.mark.anyio
async def test_send_of_an_unknown_contract_is_404(client: httpx.AsyncClient) -> None:
    """Sending something never submitted is 404."""
    response = await client.post("/v1/contracts/nobody/send")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.anyio
async def test_send_when_already_requested_at_intake_is_409(client: httpx.AsyncClient) -> None:
    """A request that asked to send on creation cannot be sent again."""
    await client.post("/v1/contracts", json=acme("deal-7", send_to_counterparties={}))
    assert (await client.post("/v1/contracts/deal-7/send")).status_code == 409


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "flow"),
    [
        ("EXECUTED", {"_executed_seen": True, "_notified": ["synced"]}),
        ("VOIDED", {"_voided": True}),
        ("DRAFT", {"_error": {"step": "create", "message": "template field mismatch"}}),
        ("REDLINING", {"_sent": True}),
    ],
)
async def test_send_in_a_later_state_is_409(
    client: httpx.AsyncClient, store: MemoryEventStore, status: str, flow: dict[str, Any]
) -> None:
    """Per the projection, a sent, executed, voided or failed contract cannot be sent."""
    await client.post("/v1/contracts", json=acme("deal-8"))
    doc = {"external_id": "deal-8", "status": status, **flow}
    await store.commit_projection("test", 1, [DocumentWrite("contracts", "deal-8", doc)])
    response = await client.post("/v1/contracts/deal-8/send")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_sendable"


@pytest.mark.anyio
async def test_a_contract_whose_sink_delivery_is_parked_can_still_be_sent(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """It reads ``sync: "failed"`` (the sink needs a person), but its flow is only at
    created: nothing about the sink stops a send."""
    await client.post("/v1/contracts", json=acme("deal-8"))
    state = ContractState(
        "deal-8",
        spotdraft_id="T-8",
        status="DRAFT",
        sink_parked={"milestone": "created", "error": "sink answered 503"},
    )
    doc = state.to_document()
    assert doc["sync"] == "failed"
    await store.commit_projection("test", 1, [DocumentWrite("contracts", "deal-8", doc)])
    response = await client.post("/v1/contracts/deal-8/send")
    assert response.status_code == 202


@pytest.mark.anyio
async def test_a_body_that_is_not_json_is_422_with_where_it_broke(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """An invalid payload is 422 (SPEC section 5), even one that is not JSON at all; the
    message says where it broke, and nothing is stored."""
    response = await client.post(
        "/v1/contracts", content=b'{"external_metadata": {"id": "deal-x",}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert fields_of(response) == {"(body)"}
    assert "column" in error["fields"][0]["message"]
    assert await store.last_position() == 0


@pytest.mark.anyio
async def test_invalid_send_body_is_422(client: httpx.AsyncClient) -> None:
    """Send fields of the wrong type are named."""
    await client.post("/v1/contracts", json=acme("deal-9"))
    response = await client.post("/v1/contracts/deal-9/send", json={"to_emails": [1]})
    assert response.status_code == 422
    assert fields_of(response) == {"to_emails[0]"}


@pytest.mark.anyio
async def test_an_empty_attachment_format_list_is_422(client: httpx.AsyncClient) -> None:
    """SpotDraft needs at least one attachment format: [] is named, at intake and on send."""
    payload = acme("deal-formats")
    payload["send_to_counterparties"] = {"attachment_formats": []}
    refused = await client.post("/v1/contracts", json=payload)
    del payload["send_to_counterparties"]
    await client.post("/v1/contracts", json=payload)
    send = await client.post("/v1/contracts/deal-formats/send", json={"attachment_formats": []})
    assert refused.status_code == 422
    assert fields_of(refused) == {"send_to_counterparties.attachment_formats"}
    assert send.status_code == 422
    assert fields_of(send) == {"attachment_formats"}


@pytest.mark.anyio
async def test_concurrent_identical_requests_store_one_event(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """Racing duplicates: exactly one 202, the rest 200, one event stored."""
    statuses: list[int] = []

    async def submit() -> None:
        statuses.append((await client.post("/v1/contracts", json=acme("race-1"))).status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(submit)
    assert sorted(statuses) == [200] * 7 + [202]
    assert await store.stream_version("contract-race-1") == 1


@pytest.mark.anyio
async def test_concurrent_different_requests_conflict(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """Racing different payloads for one id: one wins with 202, the other gets 409."""
    statuses: list[int] = []

    async def submit(name: str) -> None:
        payload = acme("race-2", contract_name=name)
        statuses.append((await client.post("/v1/contracts", json=payload)).status_code)

    async with anyio.create_task_group() as tg:
        tg.start_soon(submit, "one")
        tg.start_soon(submit, "two")
    assert sorted(statuses) == [202, 409]
    assert await store.stream_version("contract-race-2") == 1


@pytest.mark.anyio
@pytest.mark.parametrize("field", ["contract_name", "workflow_config", "send_to_counterparties"])
async def test_explicit_null_optional_fields_are_422(client: httpx.AsyncClient, field: str) -> None:
    """An optional field given as null is named, as the published schema says."""
    response = await client.post("/v1/contracts", json=acme("nulls", **{field: None}))
    assert response.status_code == 422
    assert fields_of(response) == {field}


@pytest.mark.anyio
async def test_individuals_need_no_organization_name(client: httpx.AsyncClient) -> None:
    """A counterparty that is an individual is valid without organization_name."""
    payload = acme("person-1")
    party = payload["counter_party_details"][0]
    party["is_individual"] = True
    del party["organization_name"]
    assert (await client.post("/v1/contracts", json=payload)).status_code == 202


@pytest.mark.anyio
async def test_send_body_of_null_is_422(client: httpx.AsyncClient) -> None:
    """An empty send body means defaults, but JSON null is not an object."""
    await client.post("/v1/contracts", json=acme("deal-10"))
    response = await client.post(
        "/v1/contracts/deal-10/send", content=b"null", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.anyio
async def test_integral_floats_count_as_integers_and_are_stored_as_ints(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """1204.0 is an integer to JSON Schema; it is accepted and stored as 1204."""
    response = await client.post("/v1/contracts", json=acme("floaty", contract_template_id=1204.0))
    assert response.status_code == 202
    [event] = await store.read_stream("contract-floaty")
    assert type(event.data["request"]["contract_template_id"]) is int
    bad = await client.post("/v1/contracts", json=acme("floaty-2", contract_template_id=1.5))
    assert fields_of(bad) == {"contract_template_id"}


def _nested(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"deep": value}
    return value


@pytest.mark.anyio
@pytest.mark.parametrize("levels", [40, 250, 600])
async def test_data_nested_too_deep_is_422_and_not_stored(
    client: httpx.AsyncClient, store: MemoryEventStore, levels: int
) -> None:
    """Nesting past the limit is named and refused: stored, it could never be encoded
    again (export, the events API), so it would break the log for everyone."""
    payload = acme("deal-deep", contract_data={**ACME["contract_data"], "deep": _nested(levels)})
    response = await client.post("/v1/contracts", json=payload)
    assert response.status_code == 422
    [error] = response.json()["error"]["fields"]
    assert error["field"].startswith("contract_data.deep.deep.")
    assert "nested more than 32 levels" in error["message"]
    assert await store.read_stream("contract-deal-deep") == []

    await client.post("/v1/contracts", json=acme("deal-deep"))
    send = await client.post("/v1/contracts/deal-deep/send", json={"custom": _nested(levels)})
    assert send.status_code == 422
    assert fields_of(send) == {"custom" + ".deep" * 31}
    assert [e.type for e in await store.read_stream("contract-deal-deep")] == [
        "ContractRequested"
    ]


@pytest.mark.anyio
async def test_nesting_within_the_limit_is_kept_whole(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    record = {"history": [_nested(25)]}
    payload = acme("deal-nested")
    payload["external_metadata"]["record_data"] = record
    assert (await client.post("/v1/contracts", json=payload)).status_code == 202
    [event] = await store.read_stream("contract-deal-nested")
    assert event.data["request"]["external_metadata"]["record_data"] == record


async def _record(store: MemoryEventStore, external_id: str, *events: tuple[str, Any]) -> None:
    await store.append(
        f"contract-{external_id}",
        [NewEvent(type_, data, "api") for type_, data in events],
        expected_version=None,
    )


_FAILED_CREATE = ("ContractFailed", {"step": "create", "status": 400, "fix": "correct x"})


@pytest.mark.anyio
async def test_a_contract_failed_before_creation_takes_a_corrected_request(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """The fix for a request SpotDraft refused is the corrected request: 202, appended
    after the failure, which it clears; sent again it is 200; the old one is now 409."""
    first = acme("deal-fix", contract_name="Wrong")
    assert (await client.post("/v1/contracts", json=first)).status_code == 202
    await _record(store, "deal-fix", _FAILED_CREATE)
    corrected = acme("deal-fix", contract_name="Right")
    accepted = await client.post("/v1/contracts", json=corrected)
    repeated = await client.post("/v1/contracts", json=corrected)
    stale = await client.post("/v1/contracts", json=first)
    assert (accepted.status_code, repeated.status_code, stale.status_code) == (202, 200, 409)
    history = await store.read_stream("contract-deal-fix")
    assert [e.type for e in history] == ["ContractRequested", "ContractFailed", "ContractRequested"]
    state = fold(history)
    assert state is not None
    assert state.request is not None
    assert (state.sync, state.error, state.request["contract_name"]) == ("pending", None, "Right")


@pytest.mark.anyio
async def test_a_contract_created_in_spotdraft_takes_no_other_request(
    client: httpx.AsyncClient, store: MemoryEventStore
) -> None:
    """Failed after SpotDraft created it (a send refused, say), or not failed at all, a
    contract keeps its request: another one is 409, saying why."""
    assert (await client.post("/v1/contracts", json=acme("deal-made"))).status_code == 202
    await _record(
        store,
        "deal-made",
        ("ContractCreated", {"id": "T-7", "contract_id": 7, "contract_status": "DRAFT"}),
        ("ContractFailed", {"step": "send", "status": 402}),
    )
    assert (await client.post("/v1/contracts", json=acme("deal-other"))).status_code == 202
    made = await client.post("/v1/contracts", json=acme("deal-made", contract_name="New"))
    other = await client.post("/v1/contracts", json=acme("deal-other", contract_name="New"))
    assert made.status_code == other.status_code == 409
    assert "failed after SpotDraft created it" in made.json()["error"]["message"]
    assert "different payload" in other.json()["error"]["message"]


@pytest.mark.anyio
@pytest.mark.parametrize("blank", ["", " \t", "\x1c", "\x85", "\ufeff", "\u3000"])
async def test_a_name_of_whitespace_alone_is_422(client: httpx.AsyncClient, blank: str) -> None:
    """Whitespace by any engine's count (Python's or the published schema's) is blank."""
    payload = acme("deal-blank")
    payload["counter_party_details"][0]["poc_details"]["first_name"] = blank
    response = await client.post("/v1/contracts", json=payload)
    assert response.status_code == 422
    assert fields_of(response) == {"counter_party_details[0].poc_details.first_name"}


@pytest.mark.anyio
async def test_signatories_and_roles_are_checked_as_spotdraft_checks_them(
    client: httpx.AsyncClient,
) -> None:
    """What SpotDraft would refuse with a 400 is named at intake instead: a counterparty's
    signatory names its counterparty, and a party role is not empty."""
    payload = acme("deal-signers")
    payload["counter_party_details"][0]["party_role_identifier"] = ""
    payload["signatories"] = [
        {"name": "Avery", "email": "a@acme.example", "is_counterparty_signatory": True},
        {"name": "Blake", "email": "b@acme.example", "is_counterparty_signatory": True,
         "counterparty_name": " "},
        {"name": "Casey", "email": "c@acme.example", "is_counterparty_signatory": True,
         "counterparty_name": "Acme Inc."},
        {"name": "Drew", "email": "d@us.example", "is_counterparty_signatory": False},
    ]
    response = await client.post("/v1/contracts", json=payload)
    assert response.status_code == 422
    assert fields_of(response) == {
        "counter_party_details[0].party_role_identifier",
        "signatories[0].counterparty_name",
        "signatories[1].counterparty_name",
    }
    payload["counter_party_details"][0]["party_role_identifier"] = "customer"
    payload["signatories"] = [payload["signatories"][2], payload["signatories"][3]]
    assert (await client.post("/v1/contracts", json=payload)).status_code == 202
