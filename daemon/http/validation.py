"""Validation of intake payloads against SpotDraft's v2.1 create schema, naming every bad field.

The external id rule (``EXTERNAL_ID_PATTERN``) is shared with the OpenAPI description:
1 to 255 characters; no control characters (Unicode Cc) or lone surrogates; no ``/``
or ``\\`` (an id is one URL path segment and later part of a file name); no leading or
trailing whitespace; and not ``.`` or ``..`` (clients normalise those out of URLs).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

EXTERNAL_ID_MAX_LENGTH = 255
MAX_DEPTH = 32  # objects and arrays within one another, in a request body
INTEGER_MAX = 2**63 - 1  # what a database integer column (and SpotDraft) can hold
_FORBIDDEN = r"/\\\x00-\x1f\x7f-\x9f"  # slashes and Unicode Cc
EXTERNAL_ID_PATTERN = rf"^(?!\.\.?$)[^\s{_FORBIDDEN}](?:[^{_FORBIDDEN}]*[^\s{_FORBIDDEN}])?$"
_EXTERNAL_ID = re.compile(EXTERNAL_ID_PATTERN)
# Apart from the published pattern: JSON cannot carry lone surrogates (orjson refuses
# them), and a surrogate range makes the pattern unusable to Rust-regex-based tools.
_SURROGATE = re.compile(r"[\ud800-\udfff]")

# "Not blank": some character that is neither whitespace nor an information separator.
# Engines disagree on \s: \x1c-\x1f and \x85 are whitespace to Python but not to
# ECMAScript (the published schema's regex), \ufeff the other way round; naming them all
# makes the daemon and its schema agree.
VISIBLE_PATTERN = r"[^\s\x1c-\x1f\x85\ufeff]"
_VISIBLE = re.compile(VISIBLE_PATTERN)

ATTACHMENT_FORMATS = ("PDF", "DOCX", "TEMPLATE")
SEND_FIELD = "send_to_counterparties"

Errors = list[dict[str, str]]


def is_valid_external_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= EXTERNAL_ID_MAX_LENGTH
        and _EXTERNAL_ID.match(value) is not None
        and _SURROGATE.search(value) is None
    )


def _add(errors: Errors, field: str, message: str) -> None:
    errors.append({"field": field, "message": message})


def _is_int(value: object) -> bool:
    # JSON Schema counts 2.0 as an integer, and so does SpotDraft; normalise_integers
    # turns such values into ints before they are stored.
    if isinstance(value, float):
        return value.is_integer() and abs(value) <= INTEGER_MAX
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= INTEGER_MAX


def normalise_integers(body: dict[str, Any]) -> None:
    """Integral floats in the integer fields of a valid request become ints, in place."""
    if isinstance(body.get("contract_template_id"), float):
        body["contract_template_id"] = int(body["contract_template_id"])
    for signatory in body.get("signatories") or ():
        if isinstance(signatory, dict) and isinstance(signatory.get("sign_order"), float):
            signatory["sign_order"] = int(signatory["sign_order"])


def _check(errors: Errors, field: str, value: object, kind: str) -> bool:
    """Type check one present value; records an error and returns False when it fails."""
    checks: dict[str, Callable[[object], bool]] = {
        "string": lambda v: isinstance(v, str),
        "integer": _is_int,
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
    }
    if checks[kind](value):
        return True
    article = "an" if kind[0] in "aeiou" else "a"
    _add(errors, field, f"must be {article} {kind}")
    return False


def _optional(errors: Errors, obj: Mapping[str, Any], prefix: str, spec: dict[str, str]) -> None:
    # Present means checked: an explicit null is not "absent" (the published schema agrees).
    for name, kind in spec.items():
        if name in obj:
            _check(errors, prefix + name, obj[name], kind)


def _required(errors: Errors, obj: Mapping[str, Any], prefix: str, name: str, kind: str) -> bool:
    if name not in obj or obj[name] is None:
        _add(errors, prefix + name, "is required")
        return False
    return _check(errors, prefix + name, obj[name], kind)


def _string_list(errors: Errors, field: str, value: object) -> None:
    if _check(errors, field, value, "array"):
        assert isinstance(value, list)
        for i, item in enumerate(value):
            _check(errors, f"{field}[{i}]", item, "string")


def validate_send(body: object, prefix: str = "") -> Errors:
    """A send_to_counterparties body: every field optional, the given ones checked.

    Without ``attachment_formats`` SpotDraft is asked for PDF; an empty list is refused.
    """
    errors: Errors = []
    if not isinstance(body, dict):
        _add(errors, prefix.rstrip(".") or "body", "must be an object")
        return errors
    if not prefix and (deep := too_deep(body)) is not None:
        _add(errors, deep, f"is nested more than {MAX_DEPTH} levels deep")
        return errors
    if "attachment_formats" in body:
        formats = body["attachment_formats"]
        if _check(errors, prefix + "attachment_formats", formats, "array"):
            if not formats:  # SpotDraft: "At least one attachment format is required."
                _add(errors, prefix + "attachment_formats", "must name at least one format")
            for i, item in enumerate(formats):
                if item not in ATTACHMENT_FORMATS:
                    _add(
                        errors,
                        f"{prefix}attachment_formats[{i}]",
                        "must be one of " + ", ".join(ATTACHMENT_FORMATS),
                    )
    for name in ("to_emails", "cc_emails", "bcc_emails"):
        if name in body:
            _string_list(errors, prefix + name, body[name])
    _optional(errors, body, prefix, {"custom_message": "string", "subject": "string"})
    if "extra_attachments" in body:
        attachments = body["extra_attachments"]
        if _check(errors, prefix + "extra_attachments", attachments, "array"):
            for i, item in enumerate(attachments):
                at = f"{prefix}extra_attachments[{i}]"
                if _check(errors, at, item, "object"):
                    for name in ("file_name", "mime_type", "content_base64"):
                        _required(errors, item, f"{at}.", name, "string")
    return errors


def _validate_counterparty(errors: Errors, at: str, party: object) -> None:
    if not _check(errors, at, party, "object"):
        return
    assert isinstance(party, dict)
    prefix = at + "."
    individual = _required(errors, party, prefix, "is_individual", "boolean")
    if _required(errors, party, prefix, "poc_details", "object"):
        poc = party["poc_details"]
        for name in ("first_name", "email"):
            if _required(
                errors, poc, prefix + "poc_details.", name, "string"
            ) and not _VISIBLE.search(poc[name]):
                _add(errors, f"{prefix}poc_details.{name}", "must not be empty")
        _optional(errors, poc, prefix + "poc_details.", {"last_name": "string"})
    if individual and party["is_individual"] is False:
        org = party.get("organization_name")
        if org is None:
            _add(errors, prefix + "organization_name", "is required when is_individual is false")
        elif _check(errors, prefix + "organization_name", org, "string") and not _VISIBLE.search(
            org
        ):
            _add(errors, prefix + "organization_name", "must not be empty")
    else:
        _optional(errors, party, prefix, {"organization_name": "string"})
    _optional(
        errors,
        party,
        prefix,
        {"organization_type": "string", "party_role_identifier": "string"},
    )
    role = party.get("party_role_identifier")
    if isinstance(role, str) and not role:
        _add(errors, prefix + "party_role_identifier", "must not be empty")
    if "organization_details" in party and _check(
        errors, prefix + "organization_details", details := party["organization_details"], "object"
    ):
        _optional(
            errors,
            details,
            prefix + "organization_details.",
            {"jurisdiction": "string", "jurisdiction_iso_code": "string", "address": "object"},
        )


def _validate_signatory(errors: Errors, at: str, signatory: object) -> None:
    if not _check(errors, at, signatory, "object"):
        return
    assert isinstance(signatory, dict)
    prefix = at + "."
    _required(errors, signatory, prefix, "name", "string")
    _required(errors, signatory, prefix, "email", "string")
    _required(errors, signatory, prefix, "is_counterparty_signatory", "boolean")
    _optional(
        errors,
        signatory,
        prefix,
        {
            "title": "string",
            "counterparty_name": "string",
            "sign_order": "integer",
            "note": "string",
        },
    )


def _check_counterparty_name(errors: Errors, at: str, signatory: object) -> None:
    """A counterparty's signatory names its counterparty, as SpotDraft requires (whether
    the name matches one is SpotDraft's to say: the published schema cannot)."""
    if not isinstance(signatory, dict) or signatory.get("is_counterparty_signatory") is not True:
        return
    name = signatory.get("counterparty_name")
    if name is None or (isinstance(name, str) and not _VISIBLE.search(name)):
        field = f"{at}.counterparty_name"
        _add(errors, field, "is required when is_counterparty_signatory is true")


def too_deep(value: object, limit: int = MAX_DEPTH) -> str | None:
    """The first field nested deeper than ``limit`` objects and arrays, or None.

    What is accepted is stored, and every event must encode again (export, the events
    API) within the JSON encoder's own limit of a few hundred levels.
    """
    pending: list[tuple[object, str, int]] = [(value, "", 0)]
    while pending:
        item, path, depth = pending.pop()
        if isinstance(item, dict):
            children = [(v, f"{path}.{k}" if path else str(k)) for k, v in item.items()]
        elif isinstance(item, list):
            children = [(v, f"{path}[{i}]") for i, v in enumerate(item)]
        else:
            continue
        if depth >= limit:
            return path or "body"
        pending.extend((child, at, depth + 1) for child, at in children)
    return None


def validate_intake(body: object) -> Errors:
    """Every problem with a create-contract request, as ``{"field", "message"}`` pairs."""
    errors: Errors = []
    if not isinstance(body, dict):
        _add(errors, "body", "must be a JSON object")
        return errors
    if (deep := too_deep(body)) is not None:
        _add(errors, deep, f"is nested more than {MAX_DEPTH} levels deep")
        return errors
    _required(errors, body, "", "contract_template_id", "integer")
    _required(errors, body, "", "contract_data", "object")
    if _required(errors, body, "", "counter_party_details", "array"):
        parties = body["counter_party_details"]
        if not parties:
            _add(errors, "counter_party_details", "must name at least one counterparty")
        for i, party in enumerate(parties):
            _validate_counterparty(errors, f"counter_party_details[{i}]", party)
    if _required(errors, body, "", "external_metadata", "object"):
        meta = body["external_metadata"]
        if _required(errors, meta, "external_metadata.", "id", "string") and not (
            is_valid_external_id(meta["id"])
        ):
            _add(
                errors,
                "external_metadata.id",
                f"must be 1 to {EXTERNAL_ID_MAX_LENGTH} characters without control characters,"
                " slashes or backslashes, without leading or trailing whitespace,"
                " and not '.' or '..'",
            )
        _optional(
            errors,
            meta,
            "external_metadata.",
            {"integration_name": "string", "record_type": "string", "record_data": "object"},
        )
    _optional(
        errors,
        body,
        "",
        {
            "contract_name": "string",
            "entity_reference_id": "string",
            "is_embedded_contract": "boolean",
        },
    )
    if "workflow_config" in body and _check(
        errors, "workflow_config", workflow := body["workflow_config"], "object"
    ):
        flags = (
            "auto_send_to_counterparty",
            "api_only_contract_edits",
            "skip_cp_info_collection",
            "skip_creator_info_collection",
        )
        _optional(errors, workflow, "workflow_config.", dict.fromkeys(flags, "boolean"))
    if "send_to_counterparty_config" in body:
        config = body["send_to_counterparty_config"]
        errors.extend(validate_send(config, "send_to_counterparty_config."))
    if "signatories" in body and _check(
        errors, "signatories", signatories := body["signatories"], "array"
    ):
        for i, signatory in enumerate(signatories):
            _validate_signatory(errors, f"signatories[{i}]", signatory)
            _check_counterparty_name(errors, f"signatories[{i}]", signatory)
    if SEND_FIELD in body:
        errors.extend(validate_send(body[SEND_FIELD], SEND_FIELD + "."))
    return errors
