"""Creating contracts: the guide's payload, auth, and the guide's common failure points."""

from __future__ import annotations

import pytest

from tests.unit.sandbox.support import API, acme, check_response, sandbox_client, schemas

pytestmark = pytest.mark.anyio


async def test_the_guides_payload_creates_a_draft() -> None:
    """The guide's example answers 201 with T-1, DRAFT and the external metadata echoed."""
    async with sandbox_client() as (_, client):
        first = await client.post(f"{API}/contracts/", json=acme())
        second = await client.post(f"{API}/contracts/", json=acme())
    check_response("createContract", first)
    body = first.json()
    assert (body["id"], body["contract_id"], body["contract_status"]) == ("T-1", 1, "DRAFT")
    assert body["external_metadata"] == acme()["external_metadata"]
    assert body["contract_name"] == "Acme Master Services Agreement"
    assert second.json()["id"] == "T-2"


async def test_missing_credentials_answer_the_documented_401() -> None:
    """No client-secret: 401 with exactly the body the description shows."""
    async with sandbox_client() as (_, client):
        response = await client.post(f"{API}/contracts/", json=acme(),
                                     headers={"client-secret": ""})
    assert response.status_code == 401
    check_response("createContract", response)
    assert response.json() == schemas()["errors"]["unauthorized"]["example"]


async def test_wrong_credentials_answer_401() -> None:
    """A wrong secret is refused with a detail body, and nothing is created."""
    async with sandbox_client() as (sandbox, client):
        response = await client.post(f"{API}/contracts/", json=acme(),
                                     headers={"client-secret": "nope"})
    assert response.status_code == 401
    check_response("createContract", response)
    assert sandbox.contracts() == []


async def test_missing_contract_data_is_400() -> None:
    """Without contract_data the answer is 400 naming it."""
    payload = acme()
    del payload["contract_data"]
    async with sandbox_client() as (_, client):
        response = await client.post(f"{API}/contracts/", json=payload)
    assert response.status_code == 400
    check_response("createContract", response)
    assert response.json() == {"contract_data": ["This field is required."]}


async def test_field_mismatch_names_the_fields() -> None:
    """A key the template does not define and a missing required one are both named."""
    payload = acme()
    payload["contract_data"]["customer_nmae"] = payload["contract_data"].pop("customer_name")
    async with sandbox_client() as (sandbox, client):
        response = await client.post(f"{API}/contracts/", json=payload)
    assert response.status_code == 400
    problems = response.json()["contract_data"]
    assert set(problems) == {"customer_nmae", "customer_name"}
    assert sandbox.contracts() == []


async def test_field_values_are_checked_by_type() -> None:
    """A currency without a numeric value is refused, naming the field."""
    payload = acme()
    payload["contract_data"]["billing_currency"] = {"type": "USD", "value": "lots"}
    async with sandbox_client() as (_, client):
        response = await client.post(f"{API}/contracts/", json=payload)
    assert response.status_code == 400
    assert list(response.json()["contract_data"]) == ["billing_currency"]


@pytest.mark.parametrize("template_id", [4242, 9001])
async def test_inaccessible_template_is_404(template_id: int) -> None:
    """An unknown template and another workspace's template both answer the public 404."""
    payload = acme()
    payload["contract_template_id"] = template_id
    async with sandbox_client() as (_, client):
        response = await client.post(f"{API}/contracts/", json=payload)
    assert response.status_code == 404
    check_response("createContract", response)
    assert str(template_id) in response.json()["detail"]


async def test_organization_without_a_name_is_400() -> None:
    """A non-individual counterparty needs organization_name."""
    payload = acme()
    del payload["counter_party_details"][0]["organization_name"]
    async with sandbox_client() as (_, client):
        response = await client.post(f"{API}/contracts/", json=payload)
    assert response.status_code == 400
    assert "organization_name" in response.json()["counter_party_details"][0]


async def test_unknown_organization_type_is_400() -> None:
    """An organization_type the workspace does not define is refused, listing the valid ones."""
    payload = acme()
    payload["counter_party_details"][0]["organization_type"] = "corporation"
    async with sandbox_client() as (_, client):
        response = await client.post(f"{API}/contracts/", json=payload)
    assert response.status_code == 400
    message = response.json()["counter_party_details"][0]["organization_type"][0]
    assert "corporation" in message
    assert "company" in message


async def test_organization_without_a_type_is_created() -> None:
    """organization_type is optional (openapi does not require it): the contract is created."""
    payload = acme()
    del payload["counter_party_details"][0]["organization_type"]
    async with sandbox_client() as (sandbox, client):
        response = await client.post(f"{API}/contracts/", json=payload)
    assert response.status_code == 201, response.text
    check_response("createContract", response)
    assert len(sandbox.contracts()) == 1


SIGNER = {"name": "Avery Stone", "email": "legal@acme.example"}


@pytest.mark.parametrize(("change", "errors"), [
    ({"is_embedded_contract": "yes"}, {"is_embedded_contract": ["Must be a valid boolean."]}),
    ({"workflow_config": ["auto_send_to_counterparty"]},
     {"workflow_config": ['Expected a dictionary of items but got type "list".']}),
    ({"workflow_config": {"auto_send_to_counterparty": "true"}},
     {"workflow_config": {"auto_send_to_counterparty": ["Must be a valid boolean."]}}),
    ({"signatories": [{**SIGNER, "is_counterparty_signatory": True}]},
     {"signatories": [{"counterparty_name": [
         "This field is required if is_counterparty_signatory is true."]}]}),
    ({"signatories": [{**SIGNER, "is_counterparty_signatory": True,
                       "counterparty_name": "Zenith LLC"}]},
     {"signatories": [{"counterparty_name": [
         "'Zenith LLC' matches no counterparty in counter_party_details; their names: "
         "'Acme Inc.'"]}]}),
    ({"signatories": [{**SIGNER, "is_counterparty_signatory": "yes"}]},
     {"signatories": [{"is_counterparty_signatory": ["Must be a valid boolean."]}]}),
])
async def test_create_checks_the_shapes_openapi_states(
    change: dict[str, object], errors: dict[str, object]
) -> None:
    """Typed booleans, workflow_config an object, counterparty_name on a counterparty's signer."""
    payload = {**acme(), **change}
    async with sandbox_client() as (sandbox, client):
        response = await client.post(f"{API}/contracts/", json=payload)
    assert response.status_code == 400
    check_response("createContract", response)
    assert response.json() == errors
    assert sandbox.contracts() == []


async def test_party_role_identifier_may_not_be_blank() -> None:
    """party_role_identifier has minLength 1: an empty one is refused, naming it."""
    payload = acme()
    payload["counter_party_details"][0]["party_role_identifier"] = ""
    async with sandbox_client() as (_, client):
        response = await client.post(f"{API}/contracts/", json=payload)
    assert response.status_code == 400
    assert response.json() == {
        "counter_party_details": [{"party_role_identifier": ["This field may not be blank."]}]
    }


async def test_named_signatories_of_both_sides_are_accepted() -> None:
    """A counterparty signer naming its organization and one of ours without a name: 201."""
    payload = acme()
    payload["counter_party_details"][0]["party_role_identifier"] = "Customer"
    payload["workflow_config"] = {"api_only_contract_edits": True}
    payload["is_embedded_contract"] = False
    payload["signatories"] = [
        {**SIGNER, "is_counterparty_signatory": True, "counterparty_name": "Acme Inc."},
        {"name": "Sam Ruiz", "email": "sam@spotsync.example", "is_counterparty_signatory": False},
    ]
    async with sandbox_client() as (_, client):
        response = await client.post(f"{API}/contracts/", json=payload)
    assert response.status_code == 201, response.text


async def _order_form(entity: str) -> tuple[int, dict[str, object]]:
    payload = acme()
    payload["contract_template_id"] = 1422
    payload["entity_reference_id"] = entity
    payload["contract_data"] = {"order_date": "2026-05-01",
                                "total_fee": {"type": "USD", "value": 500},
                                "billing_email": "ap@acme.example"}
    async with sandbox_client() as (_, client):
        response = await client.post(f"{API}/contracts/", json=payload)
    check_response("createContract", response)
    return response.status_code, response.json()


async def test_creator_entity_mismatch_is_402() -> None:
    """Template 1422 refuses the UK entity with 402 and accepts the US one."""
    status, body = await _order_form("ENT-UK-01")
    assert status == 402
    assert "ENT-UK-01" in str(body["detail"])
    status, _ = await _order_form("ENT-US-01")
    assert status == 201


async def test_body_that_is_not_json_is_400() -> None:
    """A body that does not parse answers 400 with a detail."""
    async with sandbox_client() as (_, client):
        response = await client.post(f"{API}/contracts/", content=b"{nope",
                                     headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")


async def test_slash_mismatch_is_302_to_the_other_form() -> None:
    """POST /contracts without its slash is 302 to /contracts/, and creates nothing."""
    async with sandbox_client() as (sandbox, client):
        response = await client.post(f"{API}/contracts", json=acme())
        status = await client.get(f"{API}/contracts/T-1/status/")
    assert response.status_code == 302
    assert response.headers["location"] == f"{API}/contracts/"
    assert status.status_code == 302
    assert status.headers["location"] == f"{API}/contracts/T-1/status"
    assert sandbox.contracts() == []


async def test_wrong_method_is_a_json_405() -> None:
    """GET on the send path answers 405 with a detail body, as DRF does."""
    async with sandbox_client() as (_, client):
        response = await client.get(f"{API}/contracts/T-1/send_to_counterparties")
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "GET" not allowed.'}
