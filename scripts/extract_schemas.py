"""Extract the JSON schemas spotsync relies on from SpotDraft's openapi.yml.

    .venv/bin/python scripts/extract_schemas.py [OPENAPI_YML] [--output FILE] [--check]

Writes tests/data/spotdraft_schemas.json: for each operation spotsync calls, its method,
path, request schema and response schemas, plus the webhook payload
(``ContractActivityDomainModel``) and the documented error shapes. ``$ref``s are
resolved inline; descriptions, titles and examples are stripped; OpenAPI 3.0
``nullable`` becomes JSON Schema ``null`` types, so any JSON Schema validator can use
the file. Output is deterministic (sorted keys), so a test can prove the committed copy
is current. ``--check`` exits 1 when the file differs from a fresh extraction.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OPENAPI = ROOT.parent / "shared" / "spotdraft" / "openapi.yml"
DEFAULT_OUTPUT = ROOT / "tests" / "data" / "spotdraft_schemas.json"

# name -> (method, path): every SpotDraft operation spotsync (and its sandbox) uses.
OPERATIONS = {
    "createContract": ("post", "/api/v2.1/public/contracts/"),
    "sendToCounterparties": (
        "post", "/api/v2.1/public/contracts/{composite_id}/send_to_counterparties"),
    "getContractStatus": ("get", "/api/v2.1/public/contracts/{composite_id}/status"),
    "voidContract": ("post", "/api/v2.1/public/contracts/{composite_id}/status/void"),
    "getKeyPointers": ("get", "/api/v2.1/public/contracts/{composite_id}/key_pointers"),
    "createDownloadLink": ("post", "/api/v2.1/public/contracts/{composite_id}/download_link"),
    "getContractsByExternalMetadata": (
        "get", "/api/v2.1/public/contracts/by_external_metadata/{external_metadata_id}"),
    "getTemplateMetadata": ("get", "/api/v2.1/public/templates/{template_id}/metadata"),
    "getWebhookHmacKey": ("get", "/api/v2.1/public/webhooks/hmac_key/"),
    "createWebhook": ("post", "/api/v2.1/public/webhooks/"),
    "retriggerLatestWebhooks": ("post", "/api/v2.1/public/contracts/webhooks/re_trigger_latest/"),
}
WEBHOOK_SCHEMA = "ContractActivityDomainModel"
# Error bodies the description documents once and that the operations above share:
# name -> (method, path, status) where the description spells the shape out.
ERRORS = {
    "unauthorized": ("post", "/api/v2.1/public/sidebar/query/", "401"),
    "public_error": ("post", "/api/v2.1/public/webhooks/", "400"),
    "detail": ("post", "/api/v2.1/public/contracts/{composite_id}/status/void", "400"),
}
DROPPED_KEYWORDS = {"description", "example", "examples", "title", "summary", "externalDocs"}
NAME_MAPS = {"properties", "patternProperties", "definitions", "$defs"}


class Resolver:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def lookup(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, not {ref}")
        node: Any = self.document
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def schema(self, node: Any, seen: tuple[str, ...] = ()) -> Any:
        """``node`` with refs inlined, documentation dropped and ``nullable`` converted."""
        if isinstance(node, list):
            return [self.schema(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                raise ValueError(f"recursive schema through {ref}")
            merged = {**self.lookup(ref), **{k: v for k, v in node.items() if k != "$ref"}}
            return self.schema(merged, (*seen, ref))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in DROPPED_KEYWORDS or key.startswith("x-"):
                continue
            if key in NAME_MAPS and isinstance(value, dict):
                out[key] = {name: self.schema(sub, seen) for name, sub in value.items()}
            elif key == "nullable":
                continue
            else:
                out[key] = self.schema(value, seen)
        return _nullable(out) if node.get("nullable") is True else out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0 ``nullable: true`` as JSON Schema."""
    if "enum" in schema and None not in schema["enum"]:
        schema = {**schema, "enum": [*schema["enum"], None]}
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list):
        return {**schema, "type": kind if "null" in kind else [*kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _json_schema(resolver: Resolver, content: dict[str, Any] | None) -> Any:
    media = (content or {}).get("application/json")
    return None if media is None else resolver.schema(media.get("schema", {}))


def extract(openapi_path: Path) -> dict[str, Any]:
    with openapi_path.open("rb") as handle:
        # CSafeLoader is the safe loader, in C: the 900 KB file loads in a fraction of a second.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        document = yaml.load(handle, Loader=loader)  # noqa: S506
    resolver = Resolver(document)

    def operation(method: str, path: str) -> dict[str, Any]:
        try:
            found: dict[str, Any] = document["paths"][path][method]
        except KeyError:
            raise SystemExit(f"{method.upper()} {path} is not in {openapi_path}") from None
        return found

    operations: dict[str, Any] = {}
    for name, (method, path) in OPERATIONS.items():
        op = operation(method, path)
        body = op.get("requestBody")
        operations[name] = {
            "method": method.upper(),
            "path": path,
            "operation_id": op.get("operationId"),
            "request": _json_schema(resolver, body.get("content")) if body else None,
            "request_required": bool(body and body.get("required")),
            "responses": {
                status: _json_schema(resolver, response.get("content"))
                for status, response in op.get("responses", {}).items()
            },
        }
    errors = {}
    for name, (method, path, status) in ERRORS.items():
        response = operation(method, path)["responses"][status]
        examples = response.get("content", {}).get("application/json", {}).get("examples", {})
        errors[name] = {
            "from": f"{method.upper()} {path} {status}",
            "schema": _json_schema(resolver, response.get("content")),
            # The one example kept: the exact wording a client may match on.
            "example": examples.get("Example", {}).get("value"),
        }
    return {
        "source": "spotdraft/openapi.yml, extracted by scripts/extract_schemas.py",
        "openapi": document.get("openapi"),
        "operations": operations,
        "webhook": resolver.schema(document["components"]["schemas"][WEBHOOK_SCHEMA]),
        "errors": errors,
    }


def render(schemas: dict[str, Any]) -> str:
    return json.dumps(schemas, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("openapi", nargs="?", type=Path, default=DEFAULT_OPENAPI)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true",
                        help="compare with the output file instead of writing it")
    args = parser.parse_args(argv)
    text = render(extract(args.openapi))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date with {args.openapi}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
