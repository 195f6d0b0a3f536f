"""SpotDraft's public API paths that spotsync uses, exactly as openapi.yml spells them.

Codes in public error objects (``SD_PUBLIC_…``) are the sandbox's own: the description
documents the shape and a handful of codes, none of them for these failures.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from daemon.sandbox.contracts import DEFAULT_USER, Contract, LifecycleError, Signatory
from daemon.sandbox.gate import detail, field_errors, public_error
from daemon.sandbox.validation import (
    check_create,
    check_send,
    check_webhook,
    custom_headers,
    download_format,
)
from daemon.sandbox.webhooks import Hook
from daemon.sandbox.workspace import (
    ENTITIES,
    TEMPLATES,
    WORKSPACE_ID,
    check_contract_data,
    template_metadata,
)

if TYPE_CHECKING:
    from daemon.sandbox.server import Sandbox

BASE = "/api/v2.1/public"
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]
COMPOSITE_ID = re.compile(r"^[HT\-0-9]+$")
NOT_FOUND_CODE = "SD_PUBLIC_00004"
WORKFLOW_STATE_CODE = "SD_PUBLIC_00009"  # the description's code for a status conflict
ENTITY_CODE = "SD_PUBLIC_00021"


class _BadBody(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def _json_body(request: Request, *, optional: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        if optional:
            return {}
        raise _BadBody(field_errors({"non_field_errors": ["No data provided"]}))
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise _BadBody(detail(400, f"JSON parse error - {exc}")) from None
    if not isinstance(body, dict):
        raise _BadBody(field_errors({"non_field_errors": [
            f"Invalid data. Expected a dictionary, but got {type(body).__name__}."]}))
    return body


def contract_not_found(composite_id: str) -> JSONResponse:
    return public_error(404, NOT_FOUND_CODE, f"Contract {composite_id} was not found.")


def _contract(sb: Sandbox, request: Request) -> Contract:
    composite_id = request.path_params["composite_id"]
    if not COMPOSITE_ID.match(composite_id):
        raise _BadBody(detail(404, "Not found."))
    contract = sb.book.get(composite_id)
    if contract is None:
        raise _BadBody(contract_not_found(composite_id))
    return contract


def _user(request: Request) -> dict[str, str]:
    email = request.headers.get("user-email")
    if not email:
        return dict(DEFAULT_USER)
    return {"name": email.split("@")[0].replace(".", " ").title(), "email": email}


def routes(sb: Sandbox) -> list[Route]:
    async def create(request: Request) -> Response:
        body = await _json_body(request)
        errors = check_create(body)
        if errors:
            return field_errors(errors)
        template = TEMPLATES.get(int(body["contract_template_id"]))
        if template is None or template.workspace_id != WORKSPACE_ID:
            return public_error(404, NOT_FOUND_CODE, f"Template {body['contract_template_id']} "
                                "was not found in this workspace.")
        data_errors = check_contract_data(template, body["contract_data"])
        if data_errors:
            return field_errors({"contract_data": data_errors})
        entity_id = body.get("entity_reference_id") or "ENT-US-01"
        if template.allowed_entities is not None and entity_id not in template.allowed_entities:
            return public_error(402, ENTITY_CODE, f"Template {template.id} cannot be used by "
                                f"creator entity {entity_id}; allowed: "
                                f"{', '.join(sorted(template.allowed_entities))}.")
        user = _user(request)
        contract = sb.create_contract(
            template=template,
            contract_name=body.get("contract_name") or template.name,
            contract_data=body["contract_data"],
            counterparties=body["counter_party_details"],
            external_metadata=_metadata(body.get("external_metadata")),
            entity=ENTITIES[entity_id],
            signatories=_signatories(body, user),
            business_user=user,
        )
        answer = {"id": contract.id, "contract_id": contract.contract_id,
                  **contract.summary(sb.public_url(request))}
        workflow = body.get("workflow_config") or {}
        if isinstance(workflow, dict) and workflow.get("auto_send_to_counterparty"):
            sb.send(contract, body.get("send_to_counterparty_config") or {})
        delay = sb.gate.faults.create_delay_ms
        if delay:
            await anyio.sleep(delay / 1000)
        return JSONResponse(answer, status_code=201)

    async def send(request: Request) -> Response:
        contract = _contract(sb, request)
        body = await _json_body(request, optional=True)
        errors = check_send(body)
        if errors:
            return field_errors(errors)
        if contract.status != "DRAFT":
            return public_error(402, WORKFLOW_STATE_CODE, f"Contract {contract.id} is "
                                f"{contract.status}; only a DRAFT contract can be sent.")
        sb.send(contract, body)
        # The description documents 200 with no body.
        return Response(status_code=200)

    async def status(request: Request) -> Response:
        contract = _contract(sb, request)
        return JSONResponse({"contract_status": contract.status,
                             "contract_name": contract.contract_name})

    async def void(request: Request) -> Response:
        contract = _contract(sb, request)
        body = await _json_body(request)
        note = body.get("note")
        if not isinstance(note, str) or not note:
            return detail(400, "note: This field is required and may not be blank.")
        try:
            sb.void(contract)
        except LifecycleError as exc:
            return detail(400, str(exc))
        return Response(status_code=204)

    # Before execution key pointers and the signed file do not exist yet. SpotDraft's
    # error guide keeps 404 for "not found or not visible" and 402 for "business-rule or
    # workflow state": the contract is visible, its state forbids the call, so 402.
    def _not_executed(contract: Contract, what: str) -> Response:
        return public_error(402, WORKFLOW_STATE_CODE, f"Contract {contract.id} is "
                            f"{contract.status}; {what} exist once it is EXECUTED.")

    async def key_pointers(request: Request) -> Response:
        contract = _contract(sb, request)
        if contract.status != "EXECUTED":
            return _not_executed(contract, "key pointers")
        return JSONResponse(contract.key_pointers())

    async def download_link(request: Request) -> Response:
        contract = _contract(sb, request)
        body = await _json_body(request, optional=True)
        wanted = download_format(body)
        if wanted is None:
            return field_errors({"format": ["Must be one of: PDF, DOCX, "
                                            "DOCX_WITH_FALLBACK_TO_PDF."]})
        if contract.status != "EXECUTED":
            return _not_executed(contract, "signed documents")
        if wanted == "DOCX":
            return public_error(402, WORKFLOW_STATE_CODE, f"Contract {contract.id} has no "
                                "DOCX version; ask for PDF or DOCX_WITH_FALLBACK_TO_PDF.")
        url = sb.issue_download(contract, sb.public_url(request))
        return JSONResponse({"url": url, "file_name": contract.file_name,
                             "current_version_id": contract.contract_id * 10 + 1})

    async def by_external_metadata(request: Request) -> Response:
        external_id = request.path_params["external_metadata_id"]
        found = sb.book.by_external_id(external_id)[:50]
        base = sb.public_url(request)
        return JSONResponse([{"id": c.contract_id, **c.summary(base)} for c in found])

    async def metadata(request: Request) -> Response:
        raw = request.path_params["template_id"]
        if not raw.isdigit():
            return detail(404, "Not found.")
        template = TEMPLATES.get(int(raw))
        if template is None or template.workspace_id != WORKSPACE_ID:
            return public_error(404, NOT_FOUND_CODE,
                                f"Template {raw} was not found in this workspace.")
        return JSONResponse(template_metadata(template))

    async def hmac_key(request: Request) -> Response:
        return JSONResponse({"hmac_key": sb.options.hmac_key})

    async def register_webhook(request: Request) -> Response:
        body = await _json_body(request)
        problem = check_webhook(body)
        if problem:
            return public_error(400, "SD_PUBLIC_00002", problem)
        headers = custom_headers(body)
        sb.sender.registered.append(
            Hook(body["url"], frozenset(body["only_for_activities"]), headers))
        user = _user(request)
        return JSONResponse({
            "id": len(sb.sender.registered), "title": body["title"], "url": body["url"],
            "only_for_activities": body["only_for_activities"],
            "custom_headers": headers, "status": "ACTIVE",
            "created_by_user": {"id": 1, "email": user["email"], "name": user["name"]},
        }, status_code=201)

    async def re_trigger_latest(request: Request) -> Response:
        body = await _json_body(request)
        ids = body.get("contract_ids")
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            return field_errors({"contract_ids": ["Expected a list of integers."]})
        contracts = [sb.book.by_contract_id(i) for i in ids]
        if any(c is None for c in contracts):
            return detail(404, "Not Found")
        for contract in contracts:
            if contract is not None and contract.activities:
                sb.retrigger(contract)
        return JSONResponse({"message": "Success"})

    table: list[tuple[str, str, Any]] = [
        ("POST", "/contracts/", create),
        ("POST", "/contracts/{composite_id}/send_to_counterparties", send),
        ("GET", "/contracts/{composite_id}/status", status),
        ("POST", "/contracts/{composite_id}/status/void", void),
        ("GET", "/contracts/{composite_id}/key_pointers", key_pointers),
        ("POST", "/contracts/{composite_id}/download_link", download_link),
        ("GET", "/contracts/by_external_metadata/{external_metadata_id}", by_external_metadata),
        ("GET", "/templates/{template_id}/metadata", metadata),
        ("GET", "/webhooks/hmac_key/", hmac_key),
        ("POST", "/webhooks/", register_webhook),
        ("POST", "/contracts/webhooks/re_trigger_latest/", re_trigger_latest),
    ]
    # Routes take every method so that a wrong one is answered as DRF does (after auth,
    # in JSON), not with the framework's plain-text 405.
    return [
        Route(BASE + path, sb.gate.wrap(f"{method} {BASE}{path}", _answering(method, handler)),
              methods=ANY_METHOD)
        for method, path, handler in table
    ]


def _answering(method: str, handler: Any) -> Any:
    async def run(request: Request) -> Response:
        if request.method != method:
            return detail(405, f'Method "{request.method}" not allowed.')
        try:
            response: Response = await handler(request)
        except _BadBody as bad:
            return bad.response
        return response

    return run


def _metadata(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    metadata = dict(value)
    if "id" in metadata:
        metadata["id"] = str(metadata["id"])
    return metadata


def _signatories(body: dict[str, Any], user: dict[str, str]) -> list[Signatory]:
    given = body.get("signatories")
    if given:
        return [Signatory(s["name"], s["email"], s["is_counterparty_signatory"]) for s in given]
    # Unless told otherwise: each counterparty's contact, then the creating user.
    signers = []
    for party in body["counter_party_details"]:
        poc = party["poc_details"]
        name = " ".join(p for p in (poc.get("first_name"), poc.get("last_name")) if p)
        signers.append(Signatory(name, poc["email"], True))
    signers.append(Signatory(user["name"], user["email"], False))
    return signers
