"""The sandbox's workspace: its templates and their fields, entities and organization types.

Template 1204 carries exactly the fields of SpotDraft's integration guide example.
Template 9001 belongs to another workspace (so it answers 404, as an inaccessible
template does), and 1422 may only be created by one entity (the guide's "creator
entity mismatch").
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

WORKSPACE_ID = 501
OTHER_WORKSPACE_ID = 777
ORGANIZATION_TYPES = ("company", "llc", "partnership")


@dataclass(frozen=True)
class Entity:
    reference_id: str
    name: str
    # "The name of the country which is the jurisdiction for this entity" (webhook entity).
    jurisdiction: str
    type: str = "company"


ENTITIES = {
    e.reference_id: e
    for e in (
        Entity("ENT-US-01", "Spotsync Demo Inc.", "United States"),
        Entity("ENT-UK-01", "Spotsync Demo Ltd.", "United Kingdom"),
    )
}
DEFAULT_ENTITY = "ENT-US-01"


@dataclass(frozen=True)
class Field:
    """One template field. ``kind`` is the sandbox's own type, checked in ``check_value``."""

    name: str
    label: str
    kind: str  # date, text, email, number, boolean, currency, duration, enum, text_list
    required: bool = True
    options: tuple[str, ...] = ()
    default: Any = None


@dataclass(frozen=True)
class Template:
    id: int
    name: str
    contract_type_id: int
    contract_type_name: str
    fields: tuple[Field, ...]
    workspace_id: int = WORKSPACE_ID
    counter_party_kind: str = "Both"  # CounterPartyKindEnum
    allowed_entities: frozenset[str] | None = None  # None: every entity of the workspace
    field_map: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_map", {f.name: f for f in self.fields})


TEMPLATES = {
    t.id: t
    for t in (
        Template(1204, "Master Services Agreement", 11, "Master Services Agreement", (
            Field("agreement_date", "Agreement Date", "date"),
            Field("customer_name", "Customer Name", "text"),
            Field("billing_currency", "Billing Currency", "currency"),
            Field("subscription_term", "Subscription Term", "duration"),
            Field("auto_renewal", "Auto Renewal", "boolean", required=False, default=False),
            Field("notice_period_days", "Notice Period (days)", "number", required=False,
                  default=30),
        ), counter_party_kind="Organisation"),
        Template(1310, "Mutual Non-Disclosure Agreement", 12, "NDA", (
            Field("disclosure_purpose", "Purpose of Disclosure", "text"),
            Field("term_months", "Term (months)", "number"),
            Field("governing_law", "Governing Law", "enum",
                  options=("New York", "Delaware", "England and Wales")),
            Field("confidentiality_contacts", "Confidentiality Contacts", "text_list",
                  required=False, default=[]),
            Field("include_non_solicit", "Include Non-Solicit", "boolean", required=False,
                  default=False),
        )),
        Template(1422, "Order Form (US entity)", 13, "Order Form", (
            Field("order_date", "Order Date", "date"),
            Field("total_fee", "Total Fee", "currency"),
            Field("billing_email", "Billing Email", "email"),
            Field("payment_terms", "Payment Terms", "enum", required=False,
                  options=("NET_30", "NET_45", "NET_60"), default="NET_30"),
        ), allowed_entities=frozenset({"ENT-US-01"})),
        Template(9001, "Other Workspace Agreement", 99, "Other", (
            Field("anything", "Anything", "text"),
        ), workspace_id=OTHER_WORKSPACE_ID),
    )
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION_UNITS = ("DAYS", "WEEKS", "MONTHS", "YEARS")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_value(spec: Field, value: object) -> str | None:
    """Why ``value`` does not fit ``spec``, or None when it does."""
    kind = spec.kind
    if kind == "date":
        if not isinstance(value, str):
            return "Expected a date as YYYY-MM-DD."
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return "Expected a date as YYYY-MM-DD."
        return None
    if kind == "text":
        return None if isinstance(value, str) and value.strip() else "Expected non-empty text."
    if kind == "email":
        return None if isinstance(value, str) and _EMAIL.match(value) else "Expected an email."
    if kind == "number":
        return None if _is_number(value) else "Expected a number."
    if kind == "boolean":
        return None if isinstance(value, bool) else "Expected true or false."
    if kind == "enum":
        return None if value in spec.options else f"Expected one of: {', '.join(spec.options)}."
    if kind == "text_list":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else "Expected a list of strings."
    if kind == "currency":
        ok = (isinstance(value, Mapping) and isinstance(value.get("type"), str)
              and len(value["type"]) == 3 and _is_number(value.get("value")))
        return None if ok else 'Expected {"type": ISO currency code, "value": number}.'
    if kind == "duration":
        ok = (isinstance(value, Mapping) and value.get("type") in _DURATION_UNITS
              and _is_number(value.get("value"))
              and ("days" not in value or _is_number(value["days"])))
        units = ", ".join(_DURATION_UNITS)
        shape = f'{{"type": one of {units}, "value": number, "days": number}}'
        return None if ok else f"Expected {shape}."
    raise AssertionError(f"unknown field kind {kind}")


def check_contract_data(template: Template, data: Mapping[str, object]) -> dict[str, list[str]]:
    """Field-keyed problems with ``data`` against ``template`` (empty when it fits)."""
    problems: dict[str, list[str]] = {}
    for name in sorted(set(data) - set(template.field_map)):
        problems[name] = [f"'{name}' is not a field of template {template.id}."]
    for spec in template.fields:
        if spec.name not in data:
            if spec.required:
                problems[spec.name] = ["This field is required."]
            continue
        why = check_value(spec, data[spec.name])
        if why:
            problems[spec.name] = [why]
    return problems


# The public descriptor type (CfPublicDescriptorType) of each field kind. The description
# names no currency or duration type: those are numbers with their parts as child
# attributes, the way the description nests `attributes`.
_PUBLIC_TYPES = {
    "date": "date", "text": "string", "email": "string", "number": "float",
    "boolean": "boolean", "enum": "enum", "text_list": "array of strings",
    "currency": "float", "duration": "int",
}
_PARTS = {
    "currency": (("type", "Currency", "string"), ("value", "Amount", "float")),
    "duration": (("type", "Unit", "string"), ("value", "Length", "int"), ("days", "Days", "int")),
}


def template_metadata(template: Template) -> dict[str, Any]:
    """A ``TemplateMetaDataResponseV2`` body for ``template``."""
    attributes: list[dict[str, Any]] = []
    for spec in template.fields:
        item: dict[str, Any] = {
            "display_label": spec.label,
            "variable": spec.name,
            "type": _PUBLIC_TYPES[spec.kind],
            "required": spec.required,
        }
        if spec.options:
            item["options"] = [{"label": o, "value": o} for o in spec.options]
        if spec.default is not None:
            item["default_value"] = spec.default
        if spec.kind in _PARTS:
            item["attributes"] = [
                {"display_label": label, "variable": part, "type": kind,
                 "parent_variable": spec.name, "parent_type": _PUBLIC_TYPES[spec.kind]}
                for part, label, kind in _PARTS[spec.kind]
            ]
        attributes.append(item)
    return {"attributes": attributes, "counter_party_kind": template.counter_party_kind}
