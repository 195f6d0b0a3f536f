"""JSON Schemas of the daemon's API bodies, for the OpenAPI description (openapi.py).

They state the same rules as validation.py, which enforces them.
"""

from __future__ import annotations

from typing import Any

from daemon.http.queries import SYNC_PHASES
from daemon.http.validation import (
    ATTACHMENT_FORMATS,
    EXTERNAL_ID_MAX_LENGTH,
    EXTERNAL_ID_PATTERN,
    INTEGER_MAX,
    VISIBLE_PATTERN,
)

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: Schema, required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer", "minimum": -INTEGER_MAX, "maximum": INTEGER_MAX}
STR_LIST: Schema = {"type": "array", "items": STR}
NONEMPTY: Schema = {"type": "string", "pattern": VISIBLE_PATTERN}

EXTERNAL_ID: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": EXTERNAL_ID_MAX_LENGTH,
    "pattern": EXTERNAL_ID_PATTERN,
    "description": "The source system's record id: 1-255 characters, no control characters,"
    " no / or \\, no leading or trailing whitespace, not '.' or '..'.",
}

SEND_REQUEST = obj(
    {
        "attachment_formats": {
            "type": "array",
            "items": {"enum": list(ATTACHMENT_FORMATS)},
            "minItems": 1,  # SpotDraft: "At least one attachment format is required."
        },
        "to_emails": STR_LIST,
        "cc_emails": STR_LIST,
        "bcc_emails": STR_LIST,
        "custom_message": STR,
        "subject": STR,
        "extra_attachments": {
            "type": "array",
            "items": obj(
                {"file_name": STR, "mime_type": STR, "content_base64": STR},
                ("file_name", "mime_type", "content_base64"),
            ),
        },
    },
    description="The body of SpotDraft's send_to_counterparties call; every field optional.",
)

COUNTERPARTY = obj(
    {
        "is_individual": {"type": "boolean"},
        "organization_type": STR,
        "organization_name": STR,
        "poc_details": obj(
            {"first_name": NONEMPTY, "last_name": STR, "email": NONEMPTY},
            ("first_name", "email"),
        ),
        "organization_details": obj(
            {"jurisdiction": STR, "jurisdiction_iso_code": STR, "address": {"type": "object"}}
        ),
        "party_role_identifier": {"type": "string", "minLength": 1},
    },
    ("is_individual", "poc_details"),
    # organization_name is required for organisations (is_individual false)
    **{
        "if": obj({"is_individual": {"const": False}}, ("is_individual",)),
        "then": {"required": ["organization_name"], "properties": {"organization_name": NONEMPTY}},
    },
)

CONTRACT_REQUEST = obj(
    {
        "contract_template_id": INT,
        "contract_data": {"type": "object"},
        "counter_party_details": {"type": "array", "minItems": 1, "items": COUNTERPARTY},
        "external_metadata": obj(
            {
                "id": EXTERNAL_ID,
                "integration_name": STR,
                "record_type": STR,
                "record_data": {"type": "object"},
            },
            ("id",),
        ),
        "contract_name": STR,
        "entity_reference_id": STR,
        "is_embedded_contract": {"type": "boolean"},
        "workflow_config": obj(
            {
                name: {"type": "boolean"}
                for name in (
                    "auto_send_to_counterparty",
                    "api_only_contract_edits",
                    "skip_cp_info_collection",
                    "skip_creator_info_collection",
                )
            }
        ),
        "send_to_counterparty_config": SEND_REQUEST,
        "signatories": {
            "type": "array",
            "items": obj(
                {
                    "name": STR,
                    "email": STR,
                    "title": STR,
                    "is_counterparty_signatory": {"type": "boolean"},
                    "counterparty_name": STR,
                    "sign_order": INT,
                    "note": STR,
                },
                ("name", "email", "is_counterparty_signatory"),
                # a counterparty's signatory names its counterparty (as SpotDraft requires)
                **{
                    "if": obj(
                        {"is_counterparty_signatory": {"const": True}},
                        ("is_counterparty_signatory",),
                    ),
                    "then": {
                        "required": ["counterparty_name"],
                        "properties": {"counterparty_name": NONEMPTY},
                    },
                },
            ),
        },
        "send_to_counterparties": {
            **SEND_REQUEST,
            "description": "spotsync's own field: send as soon as the contract is created.",
        },
    },
    ("contract_template_id", "contract_data", "counter_party_details", "external_metadata"),
    description="A SpotDraft v2.1 create-contract payload with a required external_metadata.id.",
)

_NULLABLE_OBJ: Schema = {"type": ["object", "null"]}
CONTRACT = obj(
    {
        "external_id": STR,
        "integration_name": {"type": ["string", "null"]},
        "record_type": {"type": ["string", "null"]},
        "spotdraft": _NULLABLE_OBJ,
        "status": {"type": ["string", "null"]},
        "sync": {"enum": list(SYNC_PHASES)},
        "key_pointers": {"type": "object"},
        "document": _NULLABLE_OBJ,
        "error": {},
        "last_position": {"type": "integer"},
        "updated_at": {"type": ["string", "null"]},
    },
    ("external_id", "sync"),
)

ENVELOPE = obj(
    {
        "position": {"type": "integer", "minimum": 1},
        "stream": STR,
        "version": {"type": "integer", "minimum": 1},
        "type": STR,
        "data": {"type": "object"},
        "metadata": obj(
            {
                "event_id": STR,
                "causation_id": {"type": ["string", "null"]},
                "correlation_id": {"type": ["string", "null"]},
                "source": STR,
            },
            ("event_id", "source"),
        ),
        "recorded_at": STR,
    },
    ("position", "stream", "version", "type", "data", "metadata", "recorded_at"),
)

ERROR = obj(
    {
        "error": obj(
            {
                "code": STR,
                "message": STR,
                "fields": {
                    "type": "array",
                    "items": obj({"field": STR, "message": STR}, ("field", "message")),
                },
            },
            ("code", "message"),
        )
    },
    ("error",),
)

ACCEPTED = obj({"external_id": STR, "url": STR}, ("external_id", "url"))
