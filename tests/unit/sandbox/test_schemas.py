"""The committed schema copy is current with openapi.yml, and the extraction is sound."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest

from tests.unit.sandbox.support import DATA, schemas

ROOT = Path(__file__).resolve().parents[3]
OPENAPI = ROOT.parent / "shared" / "spotdraft" / "openapi.yml"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "extract_schemas", ROOT / "scripts" / "extract_schemas.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("extract_schemas", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not OPENAPI.exists(), reason="../shared/spotdraft/openapi.yml is absent")
def test_committed_schemas_match_a_fresh_extraction() -> None:
    """Re-extracting from openapi.yml gives the committed tests/data file byte for byte."""
    script = _script()
    fresh = script.render(script.extract(OPENAPI))
    committed = (DATA / "spotdraft_schemas.json").read_text(encoding="utf-8")
    assert fresh == committed, "run: .venv/bin/python scripts/extract_schemas.py"


def test_schema_file_covers_every_operation_spotsync_uses() -> None:
    """Each operation has method, path and responses, and the webhook schema is present."""
    operations = schemas()["operations"]
    assert {op["path"] for op in operations.values()} >= {
        "/api/v2.1/public/contracts/",
        "/api/v2.1/public/contracts/{composite_id}/send_to_counterparties",
        "/api/v2.1/public/contracts/{composite_id}/status",
        "/api/v2.1/public/contracts/{composite_id}/key_pointers",
        "/api/v2.1/public/contracts/{composite_id}/download_link",
        "/api/v2.1/public/contracts/by_external_metadata/{external_metadata_id}",
    }
    assert "activity" in schemas()["webhook"]["required"]
    assert "$ref" not in str(schemas())


def test_the_guides_payload_validates_as_a_create_request() -> None:
    """The guide's own example is a valid create request under the extracted schema."""
    from tests.unit.sandbox.support import acme

    jsonschema.validate(acme(), schemas()["operations"]["createContract"]["request"])


def test_nullable_becomes_a_null_type() -> None:
    """OpenAPI 3.0 nullable turns into JSON Schema null, for typed and untyped schemas."""
    resolver = _script().Resolver({"components": {"schemas": {"N": {"type": "integer"}}}})
    typed = resolver.schema({"type": "string", "nullable": True, "description": "x"})
    assert typed == {"type": ["string", "null"]}
    referenced = resolver.schema({"allOf": [{"$ref": "#/components/schemas/N"}],
                                  "nullable": True})
    jsonschema.validate(None, referenced)
    jsonschema.validate(3, referenced)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("3", referenced)
    enum = resolver.schema({"type": "string", "enum": ["A"], "nullable": True})
    jsonschema.validate(None, enum)


def test_property_names_that_look_like_keywords_survive() -> None:
    """A property called description or title is kept; only the keywords are dropped."""
    resolver = _script().Resolver({})
    schema = resolver.schema({"type": "object", "title": "T", "description": "d",
                              "properties": {"description": {"type": "string"},
                                             "title": {"type": "string"}}})
    assert schema == {"type": "object", "properties": {"description": {"type": "string"},
                                                       "title": {"type": "string"}}}
