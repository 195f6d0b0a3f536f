"""Helpers for the sandbox tests: the guide's payload, the extracted schemas, clients."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

import anyio
import httpx
import jsonschema  # type: ignore[import-untyped]  # no stubs installed

from daemon.sandbox import Sandbox, SandboxOptions

DATA = Path(__file__).resolve().parents[2] / "data"
API = "/api/v2.1/public"
HEADERS = {"client-id": "sandbox-client", "client-secret": "sandbox-secret"}


def acme() -> dict[str, Any]:
    """The integration guide's create payload (template 1204), a fresh copy each call."""
    payload: dict[str, Any] = json.loads((DATA / "acme_contract.json").read_text())
    return copy.deepcopy(payload)


@cache
def schemas() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / "spotdraft_schemas.json").read_text())
    return loaded


def check_response(operation: str, response: httpx.Response) -> None:
    """The body validates against the operation's documented schema for its status.

    Statuses the description leaves undocumented use its shared error shapes: 401 the
    documented 401 body, 400 either the public error object or a field-keyed object,
    402/404/409 the public error object or ``{"detail"}``, 429 ``{"detail"}``.
    """
    documented = schemas()["operations"][operation]["responses"]
    status = str(response.status_code)
    errors = schemas()["errors"]
    if status in documented:
        schema = documented[status]
        if schema is None:
            assert response.content == b"", response.content
            return
    elif status == "401":
        schema = errors["unauthorized"]["schema"]
    elif status in ("402", "404", "409", "429", "500", "502", "503", "504"):
        body = response.json()
        schema = errors["public_error"]["schema"] if "code" in body else errors["detail"]["schema"]
        if "code" in body:
            assert set(body) == {"detail", "status_code", "code", "message"}, body
            assert body["status_code"] == response.status_code
    elif status == "400":
        schema = {"type": "object", "minProperties": 1}
    else:
        raise AssertionError(f"{operation} answered an undocumented {status}: {response.text}")
    jsonschema.validate(response.json(), schema)


@asynccontextmanager
async def sandbox_client(
    options: SandboxOptions | None = None,
) -> AsyncIterator[tuple[Sandbox, httpx.AsyncClient]]:
    """A running sandbox and a client talking to its app in-process."""
    async with Sandbox.running(options) as sandbox:
        transport = httpx.ASGITransport(app=sandbox.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test",
                                     headers=HEADERS) as client:
            yield sandbox, client


async def wait_until(sandbox: Sandbox, condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for ``condition`` (re-checked on each sandbox change), failing after ``within`` s."""
    with anyio.fail_after(within):
        await sandbox.wait_until(condition)


async def create(client: httpx.AsyncClient, payload: dict[str, Any] | None = None) -> str:
    response = await client.post(f"{API}/contracts/", json=payload or acme())
    assert response.status_code == 201, response.text
    composite_id: str = response.json()["id"]
    return composite_id
