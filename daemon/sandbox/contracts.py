"""Contracts the sandbox holds, and the lifecycle they move through.

DRAFT on create, REDLINING on send, then SIGN and EXECUTED (NOTES.md); VOIDED from any
stage but EXECUTED. Each transition names the webhook activities that go with it, in
the order SpotDraft would send them; the caller hands them to the webhook sender.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from daemon.sandbox.pdf import contract_pdf
from daemon.sandbox.workspace import ENTITIES, WORKSPACE_ID, Entity, Template

NEXT_STAGE = {"DRAFT": "REDLINING", "REDLINING": "SIGN", "SIGN": "EXECUTED"}
DEFAULT_USER = {"name": "Sandbox Integration User", "email": "integration@sandbox.spotdraft.local"}


class LifecycleError(Exception):
    """The contract cannot make this move in its current status."""


@dataclass(frozen=True)
class Signatory:
    name: str
    email: str
    is_counterparty_signatory: bool


@dataclass
class Contract:
    contract_id: int
    template: Template
    contract_name: str
    contract_data: dict[str, Any]
    counterparties: list[dict[str, Any]]
    external_metadata: dict[str, Any]
    entity: Entity
    signatories: list[Signatory]
    business_user: dict[str, str]
    created: dt.datetime
    status: str = "DRAFT"
    executed: dt.datetime | None = None
    document: bytes | None = None
    activities: list[str] = field(default_factory=list)
    # Who the send emailed: {"to_recipients": [...], "cc_recipients": [...]} once sent.
    recipients: dict[str, list[str]] | None = None

    @property
    def id(self) -> str:
        return f"T-{self.contract_id}"

    @property
    def reference_id(self) -> str:
        return f"SD-{self.contract_id:06d}"

    @property
    def file_name(self) -> str:
        return f"{self.id} {self.contract_name}.pdf".replace("/", "-")

    @property
    def counter_party_name(self) -> str:
        first = self.counterparties[0] if self.counterparties else {}
        if first.get("organization_name"):
            return str(first["organization_name"])
        poc = first.get("poc_details") or {}
        return " ".join(p for p in (poc.get("first_name"), poc.get("last_name")) if p)

    def summary(self, base_url: str) -> dict[str, Any]:
        """The fields shared by the create response and the by-external-metadata list."""
        return {
            "created": _iso(self.created),
            "contract_name": self.contract_name,
            "contract_link": f"{base_url}/app/contracts/{self.id}",
            "contract_status": self.status,
            "created_by": self.business_user["email"],
            "counter_party_name": self.counter_party_name,
            "contract_type_name": self.template.contract_type_name,
            "contract_type_id": self.template.contract_type_id,
            "created_by_workspace": WORKSPACE_ID,
            "external_metadata": self.external_metadata,
            "reference_id": self.reference_id,
        }

    def send_to(self, body: dict[str, Any]) -> None:
        """Note whom a send emails: the ``to_emails`` given, else each counterparty's
        contact (SpotDraft's "configured counterparty recipients"), and ``cc_emails``."""
        contacts = [str((party.get("poc_details") or {}).get("email", ""))
                    for party in self.counterparties]
        self.recipients = {
            "to_recipients": list(body.get("to_emails") or [c for c in contacts if c]),
            "cc_recipients": list(body.get("cc_emails") or []),
        }

    def key_pointers(self) -> list[dict[str, Any]]:
        """One per template field, then effective_date and contract_value."""
        pointers: list[dict[str, Any]] = []
        for spec in self.template.fields:
            value = self.contract_data.get(spec.name, spec.default)
            pointers.append({
                "field_name": spec.name, "label": spec.label, "data_type": spec.kind.upper(),
                "value": value, "format_option": _format_option(spec.kind, value),
            })
        dates = [self.contract_data[f.name] for f in self.template.fields
                 if f.kind == "date" and f.name in self.contract_data]
        effective = dates[0] if dates else (self.executed or self.created).date().isoformat()
        money = [self.contract_data[f.name] for f in self.template.fields
                 if f.kind == "currency" and f.name in self.contract_data]
        pointers.append({"field_name": "effective_date", "label": "Effective Date",
                         "data_type": "DATE", "value": effective,
                         "format_option": {"date_format": "YYYY-MM-DD"}})
        pointers.append({"field_name": "contract_value", "label": "Contract Value",
                         "data_type": "CURRENCY", "value": money[0]["value"] if money else 0,
                         "format_option": {"currency": money[0]["type"] if money else "USD"}})
        for number, pointer in enumerate(pointers, start=1):
            pointer["id"] = self.contract_id * 100 + number
        return pointers

    def control_view(self) -> dict[str, Any]:
        sha = hashlib.sha256(self.document).hexdigest() if self.document else None
        return {
            "id": self.id, "contract_id": self.contract_id, "contract_status": self.status,
            "contract_name": self.contract_name, "contract_template_id": self.template.id,
            "external_metadata": self.external_metadata, "activities": list(self.activities),
            "document_sha256": sha,
        }


def _format_option(kind: str, value: Any) -> dict[str, Any]:
    if kind == "date":
        return {"date_format": "YYYY-MM-DD"}
    if kind == "currency" and isinstance(value, dict):
        return {"currency": value.get("type")}
    return {}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class ContractBook:
    """Every contract of the workspace, with ids counting up from ``first_id``."""

    def __init__(self, first_id: int = 1) -> None:
        self._next = first_id
        self._by_id: dict[int, Contract] = {}

    def all(self) -> list[Contract]:
        return list(self._by_id.values())

    def get(self, composite_id: str) -> Contract | None:
        prefix, _, number = composite_id.partition("-")
        if prefix != "T" or not number.isdigit():
            return None
        return self._by_id.get(int(number))

    def by_contract_id(self, contract_id: int) -> Contract | None:
        return self._by_id.get(contract_id)

    def by_external_id(self, external_id: str) -> list[Contract]:
        return [c for c in self._by_id.values() if c.external_metadata.get("id") == external_id]

    def create(self, **values: Any) -> tuple[Contract, list[str]]:
        contract = Contract(contract_id=self._next, created=dt.datetime.now(dt.UTC), **values)
        self._next += 1
        self._by_id[contract.contract_id] = contract
        return contract, ["CONTRACT_CREATED"]

    def advance(self, contract: Contract) -> tuple[str, list[tuple[str, Signatory | None]]]:
        """Move to the next stage; the activities that go with it, each with who acted."""
        nxt = NEXT_STAGE.get(contract.status)
        if nxt is None:
            raise LifecycleError(
                f"Contract {contract.id} is {contract.status}; it has no next stage.")
        contract.status = nxt
        if nxt == "REDLINING":
            return nxt, [("CONTRACT_SENT_TO_COUNTERPARTY", None)]
        if nxt == "SIGN":
            return nxt, [("CONTRACT_SIGNATURE_REQUESTED", None)]
        contract.executed = dt.datetime.now(dt.UTC)
        contract.document = contract_pdf(contract)
        signed: list[tuple[str, Signatory | None]] = [
            ("CONTRACT_SIGNED", s) for s in contract.signatories
        ]
        return nxt, [*signed, ("CONTRACT_EXECUTED", None)]

    def void(self, contract: Contract) -> None:
        if contract.status == "EXECUTED":
            raise LifecycleError("Cannot void an executed contract.")
        if contract.status == "VOIDED":
            raise LifecycleError("Contract is already voided.")
        contract.status = "VOIDED"


def default_entity(reference_id: str | None) -> Entity:
    return ENTITIES[reference_id or "ENT-US-01"]
