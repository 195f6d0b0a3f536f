"""The OpenAPI 3.1 description served at ``/openapi.json``.

Written by hand to say exactly what the code does (validation.py holds the same rules
for intake payloads), so a fuzzer driven by it finds real bugs, not schema drift.
"""

from __future__ import annotations

from typing import Any

from daemon import __version__
from daemon.http.queries import (
    CURSOR_ALPHABET,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_VERSION,
    STATUSES,
    SYNC_PHASES,
)
from daemon.http.validation import (
    ATTACHMENT_FORMATS,
    EXTERNAL_ID_MAX_LENGTH,
    EXTERNAL_ID_PATTERN,
    INTEGER_MAX,
    VISIBLE_PATTERN,
)

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: Schema, required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer", "minimum": -INTEGER_MAX, "maximum": INTEGER_MAX}
_STR_LIST: Schema = {"type": "array", "items": _STR}
_NONEMPTY: Schema = {"type": "string", "pattern": VISIBLE_PATTERN}

EXTERNAL_ID: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": EXTERNAL_ID_MAX_LENGTH,
    "pattern": EXTERNAL_ID_PATTERN,
    "description": "The source system's record id: 1-255 characters, no control characters,"
    " no / or \\, no leading or trailing whitespace, not '.' or '..'.",
}

SEND_REQUEST = _obj(
    {
        "attachment_formats": {"type": "array", "items": {"enum": list(ATTACHMENT_FORMATS)}},
        "to_emails": _STR_LIST,
        "cc_emails": _STR_LIST,
        "bcc_emails": _STR_LIST,
        "custom_message": _STR,
        "subject": _STR,
        "extra_attachments": {
            "type": "array",
            "items": _obj(
                {"file_name": _STR, "mime_type": _STR, "content_base64": _STR},
                ("file_name", "mime_type", "content_base64"),
            ),
        },
    },
    description="The body of SpotDraft's send_to_counterparties call; every field optional.",
)

COUNTERPARTY = _obj(
    {
        "is_individual": {"type": "boolean"},
        "organization_type": _STR,
        "organization_name": _STR,
        "poc_details": _obj(
            {"first_name": _NONEMPTY, "last_name": _STR, "email": _NONEMPTY},
            ("first_name", "email"),
        ),
        "organization_details": _obj(
            {"jurisdiction": _STR, "jurisdiction_iso_code": _STR, "address": {"type": "object"}}
        ),
        "party_role_identifier": _STR,
    },
    ("is_individual", "poc_details"),
    # organization_name is required for organisations (is_individual false)
    **{
        "if": _obj({"is_individual": {"const": False}}, ("is_individual",)),
        "then": {"required": ["organization_name"], "properties": {"organization_name": _NONEMPTY}},
    },
)

CONTRACT_REQUEST = _obj(
    {
        "contract_template_id": _INT,
        "contract_data": {"type": "object"},
        "counter_party_details": {"type": "array", "minItems": 1, "items": COUNTERPARTY},
        "external_metadata": _obj(
            {
                "id": EXTERNAL_ID,
                "integration_name": _STR,
                "record_type": _STR,
                "record_data": {"type": "object"},
            },
            ("id",),
        ),
        "contract_name": _STR,
        "entity_reference_id": _STR,
        "is_embedded_contract": {"type": "boolean"},
        "workflow_config": _obj(
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
            "items": _obj(
                {
                    "name": _STR,
                    "email": _STR,
                    "title": _STR,
                    "is_counterparty_signatory": {"type": "boolean"},
                    "counterparty_name": _STR,
                    "sign_order": _INT,
                    "note": _STR,
                },
                ("name", "email", "is_counterparty_signatory"),
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
CONTRACT = _obj(
    {
        "external_id": _STR,
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

ENVELOPE = _obj(
    {
        "position": {"type": "integer", "minimum": 1},
        "stream": _STR,
        "version": {"type": "integer", "minimum": 1},
        "type": _STR,
        "data": {"type": "object"},
        "metadata": _obj(
            {
                "event_id": _STR,
                "causation_id": {"type": ["string", "null"]},
                "correlation_id": {"type": ["string", "null"]},
                "source": _STR,
            },
            ("event_id", "source"),
        ),
        "recorded_at": _STR,
    },
    ("position", "stream", "version", "type", "data", "metadata", "recorded_at"),
)

ERROR = _obj(
    {
        "error": _obj(
            {
                "code": _STR,
                "message": _STR,
                "fields": {
                    "type": "array",
                    "items": _obj({"field": _STR, "message": _STR}, ("field", "message")),
                },
            },
            ("code", "message"),
        )
    },
    ("error",),
)

ACCEPTED = _obj({"external_id": _STR, "url": _STR}, ("external_id", "url"))


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> Schema:
    text = {
        400: "The body is not JSON.",
        401: "Missing or invalid credentials.",
        404: "No contract has this external id.",
        409: "Conflicts with what is stored.",
        413: "The body is over the size limit.",
        422: "Invalid input; error.fields names each bad field.",
        503: "The event store is unavailable; retry.",
    }
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


_PATH_ID = {"name": "external_id", "in": "path", "required": True, "schema": EXTERNAL_ID}
_BEARER: list[Schema] = [{"bearer": []}]


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def openapi_document() -> Schema:
    contract_paths: Schema = {
        "/v1/contracts": {
            "post": {
                "operationId": "submitContract",
                "summary": "Submit a contract request (idempotent by external_metadata.id).",
                "security": _BEARER,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ContractRequest")}},
                },
                "responses": {
                    "202": _json(_ref("Accepted"), "Stored; the contract will be created."),
                    "200": _json(_ref("Accepted"), "The same request was already stored."),
                    **_errors(400, 401, 409, 413, 422, 503),
                },
            },
            "get": {
                "operationId": "listContracts",
                "summary": "Contracts, ordered by external id, with keyset pagination.",
                "security": _BEARER,
                "parameters": [
                    _query("status", {"enum": list(STATUSES)}, "SpotDraft contract_status."),
                    _query("sync", {"enum": list(SYNC_PHASES)}, "spotsync's sync phase."),
                    _query(
                        "updated_since",
                        {"type": "string", "format": "date-time"},
                        "Only contracts updated at or after this ISO 8601 time.",
                    ),
                    _query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LIMIT,
                            "default": DEFAULT_LIMIT,
                        },
                        "Page size.",
                    ),
                    _query(
                        "cursor",
                        {"type": "string", "pattern": CURSOR_ALPHABET.pattern.join("^$")},
                        "next_cursor of the previous page.",
                    ),
                ],
                "responses": {
                    "200": _json(
                        _obj(
                            {
                                "contracts": {"type": "array", "items": _ref("Contract")},
                                "next_cursor": {"type": ["string", "null"]},
                            },
                            ("contracts", "next_cursor"),
                        ),
                        "A page of contracts.",
                    ),
                    **_errors(401, 422, 503),
                },
            },
        },
        "/v1/contracts/{external_id}": {
            "get": {
                "operationId": "getContract",
                "summary": "The contract's projection (SPEC section 5).",
                "security": _BEARER,
                "parameters": [_PATH_ID],
                "responses": {
                    "200": _json(_ref("Contract"), "The contract as last projected."),
                    **_errors(401, 404, 503),
                },
            },
        },
        "/v1/contracts/{external_id}/send": {
            "post": {
                "operationId": "sendContract",
                "summary": "Ask for send_to_counterparties.",
                "security": _BEARER,
                "parameters": [_PATH_ID],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("SendRequest")}},
                },
                "responses": {
                    "202": _json(_ref("Accepted"), "Stored; the contract will be sent."),
                    **_errors(400, 401, 404, 409, 413, 422, 503),
                },
            },
        },
        "/v1/contracts/{external_id}/events": {
            "get": {
                "operationId": "contractEvents",
                "summary": "The contract's events in stream order (SPEC section 6 envelopes).",
                "security": _BEARER,
                "parameters": [
                    _PATH_ID,
                    _query(
                        "from_version",
                        {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
                        "First stream version to return.",
                    ),
                ],
                "responses": {
                    "200": _json(
                        _obj(
                            {
                                "external_id": _STR,
                                "events": {"type": "array", "items": _ref("Event")},
                            },
                            ("external_id", "events"),
                        ),
                        "The events.",
                    ),
                    **_errors(401, 404, 422, 503),
                },
            },
        },
    }
    other_paths: Schema = {
        "/webhooks/spotdraft": {
            "post": {
                "operationId": "spotdraftWebhook",
                "summary": "A SpotDraft webhook delivery; any body, signed with the HMAC key.",
                "parameters": [
                    {
                        "name": "X-SD-WEBHOOK-CONTENT-HASH",
                        "in": "header",
                        "required": True,
                        "schema": _STR,
                        "description": "Lowercase hex HMAC-SHA512 of the raw body.",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {}},
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        },
                    },
                },
                "responses": {
                    "200": _json(
                        _obj(
                            {"status": _STR, "position": {"type": "integer"}},
                            ("status", "position"),
                        ),
                        "Stored durably.",
                    ),
                    **_errors(400, 401, 413, 503),
                },
            },
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness.",
                "responses": {"200": _json(_obj({"status": _STR}, ("status",)), "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: store reachable, subscriptions running.",
                "responses": {
                    "200": _json(_ref("Readiness"), "Ready."),
                    "503": _json(_ref("Readiness"), "Not ready."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus text exposition.",
                "responses": {
                    "200": {"description": "Metrics.", "content": {"text/plain": {"schema": _STR}}}
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "spotsync",
            "version": __version__,
            "description": "Intake, query and webhook API of the spotsync daemon.",
        },
        "paths": {**contract_paths, **other_paths},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "ContractRequest": CONTRACT_REQUEST,
                "SendRequest": SEND_REQUEST,
                "Accepted": ACCEPTED,
                "Contract": CONTRACT,
                "Event": ENVELOPE,
                "Error": ERROR,
                "Readiness": _obj(
                    {
                        "status": {"enum": ["ready", "unavailable"]},
                        "checks": _obj(
                            {"store": {"type": "boolean"}, "subscriptions": {"type": "boolean"}}
                        ),
                    },
                    ("status", "checks"),
                ),
            },
        },
    }
