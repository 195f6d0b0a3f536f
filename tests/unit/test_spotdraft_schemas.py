"""Every request the client sends matches SpotDraft's description (tests/data schemas)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest

from handlers.spotdraft import RateBudget, SpotDraftClient, SpotDraftCredentials

DATA = Path(__file__).parent.parent / "data"
SCHEMAS = json.loads((DATA / "spotdraft_schemas.json").read_text())["operations"]
ACME = json.loads((DATA / "acme_contract.json").read_text())

ANSWERS: dict[str, tuple[int, Any]] = {
    "createContract": (201, {"id": "T-1", "contract_id": 1}),
    "sendToCounterparties": (200, None),
    "getContractStatus": (200, {"contract_status": "DRAFT", "contract_name": "x"}),
    "getKeyPointers": (200, []),
    "createDownloadLink": (200, {"url": "https://f.example/x.pdf", "file_name": "x.pdf"}),
    "getContractsByExternalMetadata": (200, []),
    "getTemplateMetadata": (200, {"attributes": []}),
}

Call = Callable[[SpotDraftClient], Awaitable[Any]]
CALLS: list[tuple[str, Call]] = [
    ("createContract", lambda c: c.create_contract(ACME)),
    ("sendToCounterparties", lambda c: c.send_to_counterparties("T-1")),
    ("sendToCounterparties", lambda c: c.send_to_counterparties("T-1", {})),
    (
        "sendToCounterparties",
        lambda c: c.send_to_counterparties(
            "T-1", {"to_emails": ["a@b.example"], "subject": "Sign", "custom_message": "Hi"}
        ),
    ),
    ("getContractStatus", lambda c: c.get_status("T-1")),
    ("getKeyPointers", lambda c: c.get_key_pointers("H-22")),
    ("createDownloadLink", lambda c: c.get_download_link("T-1")),
    ("createDownloadLink", lambda c: c.get_download_link("T-1", format="docx")),
    ("getContractsByExternalMetadata", lambda c: c.find_by_external_id("hubspot-deal-10024")),
    ("getTemplateMetadata", lambda c: c.get_template_metadata(1204)),
]


def operation_for(request: httpx.Request) -> str:
    """The schema operation whose method and path template match this request."""
    path = request.url.raw_path.decode().split("?")[0]
    for name, operation in SCHEMAS.items():
        literals = re.split(r"\{[^}]+\}", operation["path"])
        pattern = "[^/]+".join(re.escape(literal) for literal in literals)
        if operation["method"] == request.method and re.fullmatch(pattern, path):
            return str(name)
    raise AssertionError(f"{request.method} {path} is no operation of the description")


@pytest.mark.anyio
@pytest.mark.parametrize(("expected", "call"), CALLS)
async def test_request_matches_its_operation_and_request_schema(expected: str, call: Call) -> None:
    """The request hits the documented method and path, and its body validates."""
    seen: list[httpx.Request] = []

    def spotdraft(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body = ANSWERS[operation_for(request)]
        return httpx.Response(status, json=body)

    async def no_wait(seconds: float) -> None:
        await anyio.lowlevel.checkpoint()

    client = SpotDraftClient(
        SpotDraftCredentials("https://api.us.spotdraft.com", "id", "secret"),
        budget=RateBudget.unlimited(sleep=no_wait),
        transport=httpx.MockTransport(spotdraft),
    )
    async with client:
        await call(client)
    (request,) = seen
    assert operation_for(request) == expected
    operation = SCHEMAS[expected]
    if operation["request"] is None:
        assert request.content == b""
        return
    body = json.loads(request.content) if request.content else None
    if body is None:
        assert not operation["request_required"]
        return
    jsonschema.validate(body, operation["request"])


def test_the_guides_acme_payload_validates_against_the_create_schema() -> None:
    """tests/data/acme_contract.json is a valid create-contract request."""
    jsonschema.validate(ACME, SCHEMAS["createContract"]["request"])
    assert ACME["external_metadata"]["id"] == "hubspot-deal-10024"
    assert "send_to_counterparties" not in ACME
