"""The OpenAPI 3.1 description served at ``/openapi.json``.

Written by hand to say exactly what the code does (schemas.py states the rules that
validation.py enforces), so a fuzzer driven by it finds real bugs, not schema drift.
"""

from __future__ import annotations

from daemon import __version__
from daemon.http.queries import (
    CURSOR_ALPHABET,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_VERSION,
    STATUSES,
    SYNC_PHASES,
)
from daemon.http.schemas import (
    ACCEPTED,
    CONTRACT,
    CONTRACT_REQUEST,
    ENVELOPE,
    ERROR,
    EXTERNAL_ID,
    SEND_REQUEST,
    STR,
    Schema,
    obj,
    ref,
)


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> Schema:
    text = {
        400: "Content-Length is not a number.",
        401: "Missing or invalid credentials.",
        404: "No contract has this external id.",
        409: "Conflicts with what is stored.",
        413: "The body is over the size limit.",
        422: "Invalid input (a body that is not JSON too); error.fields names each bad field.",
        503: "The event store is unavailable; retry.",
    }
    return {str(s): _json(ref("Error"), text[s]) for s in statuses}


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


def openapi_document(*, bearer: bool = True) -> Schema:
    """The API's description; ``bearer=False`` for a daemon serving /v1 without a token
    (``--insecure-local``), which then asks for none."""
    document = _document()
    if not bearer:
        for operations in document["paths"].values():
            for operation in operations.values():
                operation.pop("security", None)
        del document["components"]["securitySchemes"]
    return document


def _document() -> Schema:
    contract_paths: Schema = {
        "/v1/contracts": {
            "post": {
                "operationId": "submitContract",
                "summary": "Submit a contract request (idempotent by external_metadata.id).",
                "security": _BEARER,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("ContractRequest")}},
                },
                "responses": {
                    "202": _json(ref("Accepted"), "Stored; the contract will be created."),
                    "200": _json(ref("Accepted"), "The same request was already stored."),
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
                        obj(
                            {
                                "contracts": {"type": "array", "items": ref("Contract")},
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
                    "200": _json(ref("Contract"), "The contract as last projected."),
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
                    "content": {"application/json": {"schema": ref("SendRequest")}},
                },
                "responses": {
                    "202": _json(ref("Accepted"), "Stored; the contract will be sent."),
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
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                        "At most this many events (default: all the rest).",
                    ),
                ],
                "responses": {
                    "200": _json(
                        obj(
                            {
                                "external_id": STR,
                                "events": {"type": "array", "items": ref("Event")},
                                "next_from_version": {
                                    "type": ["integer", "null"],
                                    "description": "from_version of the next page; null "
                                    "when these are the last events.",
                                },
                            },
                            ("external_id", "events", "next_from_version"),
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
                        "schema": STR,
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
                        obj(
                            {"status": STR, "position": {"type": "integer"}},
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
                "responses": {"200": _json(obj({"status": STR}, ("status",)), "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: store reachable, subscriptions running.",
                "responses": {
                    "200": _json(ref("Readiness"), "Ready."),
                    "503": _json(ref("Readiness"), "Not ready."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus text exposition.",
                "responses": {
                    "200": {"description": "Metrics.", "content": {"text/plain": {"schema": STR}}}
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
                "Event": {
                    **ENVELOPE,
                    "properties": {
                        **ENVELOPE["properties"],
                        "summary": {
                            "type": "string",
                            "description": "What the event means, as `spotsync events` says it.",
                        },
                    },
                    "required": [*ENVELOPE["required"], "summary"],
                },
                "Error": ERROR,
                "Readiness": obj(
                    {
                        "status": {"enum": ["ready", "unavailable"]},
                        "checks": obj(
                            {"store": {"type": "boolean"}, "subscriptions": {"type": "boolean"}}
                        ),
                    },
                    ("status", "checks"),
                ),
            },
        },
    }
