"""The lifecycle through the API and the control endpoints, and what appears once executed."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest

from daemon.sandbox import SandboxOptions
from tests.unit.sandbox.support import API, acme, check_response, create, sandbox_client

pytestmark = pytest.mark.anyio


async def test_send_then_advance_reaches_executed() -> None:
    """DRAFT -> REDLINING on send, then SIGN and EXECUTED on each advance."""
    seen = []
    async with sandbox_client() as (_, client):
        cid = await create(client)
        send = await client.post(f"{API}/contracts/{cid}/send_to_counterparties", json={})
        check_response("sendToCounterparties", send)
        for _ in range(3):
            status = await client.get(f"{API}/contracts/{cid}/status")
            check_response("getContractStatus", status)
            seen.append(status.json()["contract_status"])
            await client.post(f"/_sandbox/contracts/{cid}/advance")
        again = await client.post(f"/_sandbox/contracts/{cid}/advance")
    assert seen == ["REDLINING", "SIGN", "EXECUTED"]
    assert again.status_code == 409


async def test_send_twice_is_402_and_unknown_is_404() -> None:
    """A second send hits the workflow-state rule; an unknown id is a public 404."""
    async with sandbox_client() as (_, client):
        cid = await create(client)
        await client.post(f"{API}/contracts/{cid}/send_to_counterparties", json={})
        twice = await client.post(f"{API}/contracts/{cid}/send_to_counterparties", json={})
        unknown = await client.post(f"{API}/contracts/T-99/send_to_counterparties", json={})
        malformed = await client.get(f"{API}/contracts/X-1/status")
    assert twice.status_code == 402
    check_response("sendToCounterparties", twice)
    assert unknown.status_code == 404
    check_response("sendToCounterparties", unknown)
    assert malformed.status_code == 404


async def test_send_validates_the_fields_given() -> None:
    """An attachment format outside the enum is a 400 naming it."""
    async with sandbox_client() as (_, client):
        cid = await create(client)
        response = await client.post(f"{API}/contracts/{cid}/send_to_counterparties",
                                     json={"attachment_formats": ["ZIP"]})
    assert response.status_code == 400
    assert "attachment_formats" in response.json()


async def test_an_empty_attachment_format_list_is_400_and_sends_nothing() -> None:
    """"At least one attachment format is required": [] is refused, on send and on create."""
    async with sandbox_client() as (_, client):
        cid = await create(client)
        refused = await client.post(f"{API}/contracts/{cid}/send_to_counterparties",
                                    json={"attachment_formats": []})
        status = (await client.get(f"{API}/contracts/{cid}/status")).json()["contract_status"]
        payload = acme()
        payload["send_to_counterparty_config"] = {"attachment_formats": []}
        create_refused = await client.post(f"{API}/contracts/", json=payload)
        defaulted = await client.post(f"{API}/contracts/{cid}/send_to_counterparties", json={})
    assert refused.status_code == 400
    check_response("sendToCounterparties", refused)
    assert list(refused.json()) == ["attachment_formats"]
    assert status == "DRAFT"
    assert create_refused.status_code == 400
    assert list(create_refused.json()) == ["send_to_counterparty_config"]
    assert list(create_refused.json()["send_to_counterparty_config"]) == ["attachment_formats"]
    assert defaulted.status_code == 200


async def test_key_pointers_and_document_appear_once_executed() -> None:
    """Before execution both answer 402; after, every field plus the two summary pointers."""
    async with sandbox_client() as (sandbox, client):
        cid = await create(client)
        early_pointers = await client.get(f"{API}/contracts/{cid}/key_pointers")
        early_link = await client.post(f"{API}/contracts/{cid}/download_link", json={})
        for _ in range(3):
            await sandbox.advance(cid)
        pointers = await client.get(f"{API}/contracts/{cid}/key_pointers")
        link = await client.post(f"{API}/contracts/{cid}/download_link", json={"format": "pdf"})
        pdf = await client.get(link.json()["url"])
        listed = (await client.get("/_sandbox/contracts")).json()["contracts"]
    for response in (early_pointers, early_link):
        assert response.status_code == 402
    check_response("getKeyPointers", early_pointers)
    check_response("createDownloadLink", early_link)
    check_response("getKeyPointers", pointers)
    check_response("createDownloadLink", link)
    by_name = {p["field_name"]: p["value"] for p in pointers.json()}
    assert set(by_name) == {*acme()["contract_data"], "effective_date", "contract_value"}
    assert (by_name["effective_date"], by_name["contract_value"]) == ("2026-04-20", 12000)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert b"Acme Master Services Agreement" in pdf.content
    assert listed[0]["document_sha256"] == hashlib.sha256(pdf.content).hexdigest()


async def test_pdf_cross_reference_offsets_point_at_objects() -> None:
    """Every xref entry of the executed PDF is the byte offset of its object."""
    async with sandbox_client() as (sandbox, client):
        cid = await create(client)
        for _ in range(3):
            await sandbox.advance(cid)
        pdf = sandbox.document(cid)
    assert pdf is not None
    assert pdf.startswith(b"%PDF-1.4\n")
    assert pdf.rstrip().endswith(b"%%EOF")
    startxref = int(re.search(rb"startxref\n(\d+)\n", pdf).group(1))  # type: ignore[union-attr]
    assert pdf[startxref:].startswith(b"xref\n")
    offsets = re.findall(rb"(\d{10}) 00000 n ", pdf[startxref:])
    for number, offset in enumerate(offsets, start=1):
        assert pdf[int(offset):].startswith(b"%d 0 obj" % number)


async def test_download_url_expires() -> None:
    """A url past its lifetime answers 403 instead of the file."""
    async with sandbox_client(SandboxOptions(download_ttl_s=0)) as (sandbox, client):
        cid = await create(client)
        for _ in range(3):
            await sandbox.advance(cid)
        link = await client.post(f"{API}/contracts/{cid}/download_link")
        response = await client.get(link.json()["url"])
    assert response.status_code == 403


async def test_download_url_carries_its_signature_in_the_query() -> None:
    """As openapi's example (``...?signature=``): the path names the file, the query signs it."""
    async with sandbox_client() as (sandbox, client):
        cid = await create(client)
        for _ in range(3):
            await sandbox.advance(cid)
        link = (await client.post(f"{API}/contracts/{cid}/download_link")).json()
    url = httpx.URL(link["url"])
    signature = url.params["signature"]
    assert len(signature) >= 16
    assert signature not in url.path
    assert url.path == f"/_files/{link['file_name']}"


async def test_a_signed_url_serves_only_its_own_file() -> None:
    """Another file name with a valid signature, or a forged signature, is a 403 from storage."""
    async with sandbox_client() as (sandbox, client):
        cid = await create(client)
        for _ in range(3):
            await sandbox.advance(cid)
        link = httpx.URL((await client.post(f"{API}/contracts/{cid}/download_link")).json()["url"])
        renamed = await client.get(link.copy_with(path="/_files/T-1 other.pdf"))
        forged = await client.get(link.copy_set_param("signature", "0" * 32))
        unsigned = await client.get(link.copy_with(query=None))
        good = await client.get(link)
    assert good.status_code == 200
    for refused in (renamed, forged, unsigned):
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/xml")
        assert b"%PDF" not in refused.content
    assert b"<Code>SignatureDoesNotMatch</Code>" in renamed.content
    assert b"<Code>AccessDenied</Code>" in forged.content


async def test_void_from_draft_and_not_from_executed() -> None:
    """Void answers 204 on a draft; on an executed contract the documented 400."""
    async with sandbox_client() as (sandbox, client):
        draft = await create(client)
        done = await create(client)
        for _ in range(3):
            await sandbox.advance(done)
        voided = await client.post(f"{API}/contracts/{draft}/status/void", json={"note": "dup"})
        refused = await client.post(f"{API}/contracts/{done}/status/void", json={"note": "x"})
        no_note = await client.post(f"{API}/contracts/{draft}/status/void", json={})
        status = await client.get(f"{API}/contracts/{draft}/status")
    check_response("voidContract", voided)
    assert voided.status_code == 204
    assert status.json()["contract_status"] == "VOIDED"
    check_response("voidContract", refused)
    assert refused.json() == {"detail": "Cannot void an executed contract."}
    assert no_note.status_code == 400
    check_response("voidContract", no_note)


async def test_lookup_by_external_metadata() -> None:
    """Contracts are found by external_metadata.id; an unknown id finds an empty list."""
    async with sandbox_client() as (_, client):
        await create(client)
        found = await client.get(f"{API}/contracts/by_external_metadata/hubspot-deal-10024")
        none = await client.get(f"{API}/contracts/by_external_metadata/nothing-here")
    check_response("getContractsByExternalMetadata", found)
    assert [c["id"] for c in found.json()] == [1]
    assert none.json() == []


async def test_template_metadata() -> None:
    """Template 1204 lists the guide's fields; another workspace's template is 404."""
    async with sandbox_client() as (_, client):
        ours = await client.get(f"{API}/templates/1204/metadata")
        theirs = await client.get(f"{API}/templates/9001/metadata")
        nda = await client.get(f"{API}/templates/1310/metadata")
    check_response("getTemplateMetadata", ours)
    check_response("getTemplateMetadata", nda)
    assert [a["variable"] for a in ours.json()["attributes"]] == list(acme()["contract_data"])
    assert theirs.status_code == 404
    check_response("getTemplateMetadata", theirs)


async def test_hmac_key_and_webhook_registration() -> None:
    """The hmac key is the configured one; a registration answers 201, a bad one 400."""
    async with sandbox_client() as (sandbox, client):
        key = await client.get(f"{API}/webhooks/hmac_key/")
        created = await client.post(f"{API}/webhooks/", json={
            "title": "spotsync", "url": "http://127.0.0.1:9/hook",
            "only_for_activities": ["CONTRACT_EXECUTED"]})
        bad = await client.post(f"{API}/webhooks/", json={
            "title": "spotsync", "url": "http://127.0.0.1:9/hook",
            "only_for_activities": ["contract.executed"]})
    check_response("getWebhookHmacKey", key)
    assert key.json() == {"hmac_key": sandbox.options.hmac_key}
    check_response("createWebhook", created)
    assert created.status_code == 201
    check_response("createWebhook", bad)
    assert bad.status_code == 400
    assert "contract.executed" in bad.json()["detail"]


async def test_retrigger_latest() -> None:
    """Known contracts answer the documented success; an unknown one the documented 404."""
    async with sandbox_client() as (_, client):
        await create(client)
        ok = await client.post(f"{API}/contracts/webhooks/re_trigger_latest/",
                               json={"contract_ids": [1]})
        missing = await client.post(f"{API}/contracts/webhooks/re_trigger_latest/",
                                    json={"contract_ids": [1, 77]})
    check_response("retriggerLatestWebhooks", ok)
    assert ok.json() == {"message": "Success"}
    check_response("retriggerLatestWebhooks", missing)
    assert missing.status_code == 404


async def test_user_email_acts_as_that_user() -> None:
    """The user-email header becomes the contract's creator."""
    async with sandbox_client() as (_, client):
        response = await client.post(f"{API}/contracts/", json=acme(),
                                     headers={"user-email": "jo.doe@acme.example"})
    assert response.json()["created_by"] == "jo.doe@acme.example"
