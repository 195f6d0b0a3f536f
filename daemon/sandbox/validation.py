"""Request-shape checks, answering as DRF serializers do: errors keyed by field.

Shapes follow openapi.yml (``ExternalCreateContractSerializerV2_1``, ``SendToCounterparty``,
``DownloadLinkRequest``, ``PublicWebhookCreateRequest``); the workspace rules
(organization types, entities) follow NOTES.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from daemon.sandbox.webhooks import ACTIVITIES
from daemon.sandbox.workspace import ENTITIES, ORGANIZATION_TYPES

REQUIRED = "This field is required."
NOT_BOOLEAN = "Must be a valid boolean."
NOT_STRING = "Not a valid string."
BLANK = "This field may not be blank."
WORKFLOW_FLAGS = ("auto_send_to_counterparty", "api_only_contract_edits",
                  "skip_cp_info_collection", "skip_creator_info_collection")
ATTACHMENT_FORMATS = ("DOCX", "PDF", "TEMPLATE")
DOWNLOAD_FORMATS = ("PDF", "DOCX", "DOCX_WITH_FALLBACK_TO_PDF")
Errors = dict[str, Any]


def _type_name(value: object) -> str:
    return type(value).__name__


def _string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _not_a_dictionary(value: object) -> list[str]:
    return [f'Expected a dictionary of items but got type "{_type_name(value)}".']


def _counterparty_name(party: Mapping[str, Any]) -> str:
    """The name a signatory's ``counterparty_name`` must match (openapi.yml): the
    organization's name, or an individual's first and last name joined."""
    if not party.get("is_individual"):
        return str(party.get("organization_name") or "")
    poc = party.get("poc_details") or {}
    return " ".join(p for p in (poc.get("first_name"), poc.get("last_name")) if p)


def check_create(body: Mapping[str, Any]) -> Errors:
    """Shape problems of a create body (the template's own fields are checked later)."""
    errors: Errors = {}
    template_id = body.get("contract_template_id")
    if template_id is None:
        errors["contract_template_id"] = [REQUIRED]
    elif isinstance(template_id, bool) or not isinstance(template_id, int | str) or not str(
        template_id
    ).isdigit():
        errors["contract_template_id"] = ["A valid integer is required."]
    if "contract_data" not in body or body["contract_data"] is None:
        errors["contract_data"] = [REQUIRED]
    elif not isinstance(body["contract_data"], dict):
        errors["contract_data"] = _not_a_dictionary(body["contract_data"])
    parties = body.get("counter_party_details")
    if parties is None:
        errors["counter_party_details"] = [REQUIRED]
    elif not isinstance(parties, list):
        errors["counter_party_details"] = [
            f'Expected a list of items but got type "{_type_name(parties)}".'
        ]
    elif not parties:
        errors["counter_party_details"] = ["This list may not be empty."]
    else:
        per_party = [_check_counterparty(p) for p in parties]
        if any(per_party):
            errors["counter_party_details"] = per_party
    for name in ("contract_name", "entity_reference_id"):
        if name in body and not isinstance(body[name], str):
            errors[name] = [NOT_STRING]
    if "is_embedded_contract" in body and not isinstance(body["is_embedded_contract"], bool):
        errors["is_embedded_contract"] = [NOT_BOOLEAN]
    workflow = body.get("workflow_config")
    if workflow is not None:
        if not isinstance(workflow, dict):
            errors["workflow_config"] = _not_a_dictionary(workflow)
        else:
            flags = {name: [NOT_BOOLEAN] for name in WORKFLOW_FLAGS
                     if name in workflow and not isinstance(workflow[name], bool)}
            if flags:
                errors["workflow_config"] = flags
    entity = body.get("entity_reference_id")
    if isinstance(entity, str) and entity not in ENTITIES:
        errors["entity_reference_id"] = [
            f"'{entity}' is not an entity of this workspace: {', '.join(sorted(ENTITIES))}."
        ]
    metadata = body.get("external_metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            errors["external_metadata"] = ["Expected a dictionary of items."]
        elif "id" in metadata and not isinstance(metadata["id"], str | int):
            errors["external_metadata"] = {"id": [NOT_STRING]}
    signatories = body.get("signatories")
    if signatories is not None:
        if not isinstance(signatories, list):
            errors["signatories"] = ["Expected a list of items."]
        else:
            names = ({_counterparty_name(p) for p in parties if isinstance(p, dict)}
                     if isinstance(parties, list) and "counter_party_details" not in errors
                     else None)
            per_signatory = [_check_signatory(s, names) for s in signatories]
            if any(per_signatory):
                errors["signatories"] = per_signatory
    if "send_to_counterparty_config" in body:
        config = body["send_to_counterparty_config"]
        problems = check_send(config) if isinstance(config, dict) else {
            "non_field_errors": ["Expected a dictionary of items."]}
        if problems:
            errors["send_to_counterparty_config"] = problems
    return errors


def _check_counterparty(party: object) -> Errors:
    if not isinstance(party, dict):
        return {"non_field_errors": ["Expected a dictionary of items."]}
    errors: Errors = {}
    individual = party.get("is_individual")
    if individual is None:
        errors["is_individual"] = [REQUIRED]
    elif not isinstance(individual, bool):
        errors["is_individual"] = [NOT_BOOLEAN]
    poc = party.get("poc_details")
    if not isinstance(poc, dict):
        errors["poc_details"] = [REQUIRED] if poc is None else ["Expected a dictionary of items."]
    else:
        poc_errors = {k: [REQUIRED] for k in ("first_name", "email") if not poc.get(k)}
        if poc_errors:
            errors["poc_details"] = poc_errors
    if individual is False:
        if not party.get("organization_name"):
            errors["organization_name"] = ["This field is required for a non-individual "
                                           "counterparty."]
        # Optional (openapi.yml does not require it); when given, one the workspace defines.
        kind = party.get("organization_type")
        if kind is not None and kind not in ORGANIZATION_TYPES:
            errors["organization_type"] = [
                f"'{kind}' is not an organization type of this workspace: "
                f"{', '.join(ORGANIZATION_TYPES)}."
            ]
    if "party_role_identifier" in party:  # minLength 1
        role = party["party_role_identifier"]
        if not isinstance(role, str):
            errors["party_role_identifier"] = [NOT_STRING]
        elif not role:
            errors["party_role_identifier"] = [BLANK]
    details = party.get("organization_details")
    if isinstance(details, dict) and isinstance(details.get("address"), dict):
        address = details["address"]
        missing = {k: [REQUIRED] for k in ("line_one", "city", "country_iso_code")
                   if not address.get(k)}
        if missing:
            errors["organization_details"] = {"address": missing}
    return errors


def _check_signatory(signatory: object, counterparties: set[str] | None) -> Errors:
    """One signatory; ``counterparties`` are the names ``counterparty_name`` may take
    (None when the counterparties themselves are invalid: then it is not matched)."""
    if not isinstance(signatory, dict):
        return {"non_field_errors": ["Expected a dictionary of items."]}
    errors: Errors = {k: [REQUIRED] for k in ("name", "email") if not signatory.get(k)}
    on_their_side = signatory.get("is_counterparty_signatory")
    if on_their_side is None:
        errors["is_counterparty_signatory"] = [REQUIRED]
    elif not isinstance(on_their_side, bool):
        errors["is_counterparty_signatory"] = [NOT_BOOLEAN]
    name = signatory.get("counterparty_name")
    if name is not None and not isinstance(name, str):
        errors["counterparty_name"] = [NOT_STRING]
    elif on_their_side is True:
        # openapi.yml: "Required if is_counterparty_signatory is True. Must match the name
        # of one of the counterparties in counter_party_details."
        if not name:
            errors["counterparty_name"] = [
                "This field is required if is_counterparty_signatory is true."]
        elif counterparties is not None and name not in counterparties:
            errors["counterparty_name"] = [
                f"'{name}' matches no counterparty in counter_party_details; their names: "
                + ", ".join(repr(n) for n in sorted(counterparties))]
    return errors


def check_send(body: Mapping[str, Any]) -> Errors:
    """A send_to_counterparties body (or a create's ``send_to_counterparty_config``).

    Without ``attachment_formats`` it is accepted (NOTES.md: SpotDraft's own guide sends
    ``{}``, formats default to PDF); an explicit empty list is not: "At least one
    attachment format is required" (openapi.yml, ``SendToCounterparty``).
    """
    errors: Errors = {}
    formats = body.get("attachment_formats")
    if formats is not None and (
        not isinstance(formats, list) or any(f not in ATTACHMENT_FORMATS for f in formats)
    ):
        allowed = ", ".join(ATTACHMENT_FORMATS)
        errors["attachment_formats"] = [f"Each item must be one of: {allowed}."]
    elif formats == []:
        errors["attachment_formats"] = ["At least one attachment format is required."]
    for name in ("to_emails", "cc_emails", "bcc_emails"):
        if name in body and not _string_list(body[name]):
            errors[name] = ["Expected a list of strings."]
    for name in ("custom_message", "subject"):
        if name in body and not isinstance(body[name], str):
            errors[name] = [NOT_STRING]
    attachments = body.get("extra_attachments")
    if attachments is not None:
        ok = isinstance(attachments, list) and all(
            isinstance(a, dict) and all(isinstance(a.get(k), str)
                                        for k in ("file_name", "mime_type", "content_base64"))
            for a in attachments
        )
        if not ok:
            errors["extra_attachments"] = [
                "Each item needs file_name, mime_type and content_base64."]
    return errors


def download_format(body: Mapping[str, Any]) -> str | None:
    """The requested format, upper-cased (SpotDraft's guide sends ``"pdf"``); None if invalid."""
    value = body.get("format")
    if value is None:
        return "PDF"
    if isinstance(value, str) and value.upper() in DOWNLOAD_FORMATS:
        return value.upper()
    return None


# The one departure from SpotDraft here (a sandbox assumption, see the package docstring):
# plain http is taken for these hosts, so that a daemon on this machine gets deliveries.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# openapi.yml: custom header names "should start with `X-` and must not start with" these.
RESERVED_HEADER_PREFIXES = ("X-Google-", "X-Goog-", "X-GFE-", "X-Amz-", "X-MS-", "X-DD-",
                            "X-Datadog-", "X-B3-", "X-SD-", "X-SPOTDRAFT-")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an RFC 9110 token
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")  # no control characters


def check_webhook(body: Mapping[str, Any]) -> str | None:
    """What is wrong with a webhook registration, as ``"field: problem"``; None if nothing."""
    for name in ("title", "url"):
        if not isinstance(body.get(name), str) or not body[name]:
            return f"{name}: This field is required."
    if "description" in body and not isinstance(body["description"], str):
        return f"description: {NOT_STRING}"
    problem = _url_problem(body["url"])
    if problem:
        return f"url: {problem}"
    only = body.get("only_for_activities")
    if not isinstance(only, list):
        return "only_for_activities: This field is required."
    if not only:
        return "only_for_activities: The list cannot be empty."
    unknown = [a for a in only if a not in ACTIVITIES]
    if unknown:
        return f"only_for_activities: {unknown[0]!r} is not a webhook activity."
    headers = body.get("custom_headers")
    if headers is None:
        return None
    if not isinstance(headers, dict):
        return f"custom_headers: {_not_a_dictionary(headers)[0]}"
    for raw, value in headers.items():
        problem = _header_problem(raw.strip(), value)
        if problem:
            return f"custom_headers: {problem}"
    return None


def custom_headers(body: Mapping[str, Any]) -> dict[str, str]:
    """A valid registration's custom headers, names trimmed as SpotDraft trims them."""
    return {name.strip(): value for name, value in (body.get("custom_headers") or {}).items()}


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError on a port that is not a number
    except ValueError:
        return "Enter a valid URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Enter a valid URL."
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return ("Non-HTTPS URLs are rejected (the sandbox takes http:// only on "
                f"{', '.join(sorted(LOOPBACK_HOSTS))}).")
    return None


def _header_problem(name: str, value: object) -> str | None:
    if not _HEADER_NAME.match(name) or not name.upper().startswith("X-") or len(name) < 3:
        return (f"{name!r} is not a custom header name: standard HTTP headers are rejected, "
                "custom ones start with X-.")
    reserved = [p for p in RESERVED_HEADER_PREFIXES if name.upper().startswith(p.upper())]
    if reserved:
        return f"{name!r} starts with {reserved[0]!r}, a prefix custom headers may not use."
    if not isinstance(value, str) or not _HEADER_VALUE.match(value):
        return f"the value of {name!r} must be a string without control characters."
    return None
