"""Security as a user meets it: tokens on every /v1 route, hostile external ids, limits."""

from __future__ import annotations

import os
import socket
import stat
import sys
from pathlib import Path
from urllib.parse import quote

import anyio
import httpx
import pytest

from daemon.sandbox import DEFAULT_CLIENT_SECRET, DEFAULT_HMAC_KEY
from tests.acceptance.conftest import (
    API_TOKEN,
    SINK_SECRET,
    Deployment,
    contract_request,
    contracts_by_sync,
    wait_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

# Accepted ids that would do harm if they reached a path, a route or a shell unchanged.
HOSTILE_ACCEPTED = [
    "..%2F..%2Fetc%2Fpasswd",
    ".hidden-deal",
    "...",
    "合同-ünïcödé-😀",
    "a?b#c&d=e",
    "%00%2e%2e",
    "~root; rm -rf *",
    "CON",
    "x" * 255,
]
REFUSED = [
    "",
    "x" * 10_240,
    "../../etc/passwd",
    "..",
    ".",
    "a/b",
    "a\\b",
    "nul\0inside",
    "line\nbreak",
    " padded ",
]


def quoted(external_id: str) -> str:
    return quote(external_id, safe="")


async def test_every_v1_route_needs_the_bearer_token(deployment: Deployment) -> None:
    """Every /v1 operation in /openapi.json answers 401 without the token or with a wrong one."""
    async with deployment.daemon(), httpx.AsyncClient(base_url=deployment.url) as anonymous:
        document = (await anonymous.get("/openapi.json")).json()
        operations = [
            (method.upper(), path.replace("{external_id}", "crm-1"))
            for path, item in document["paths"].items()
            if path.startswith("/v1")
            for method in item
            if method in ("get", "post", "put", "patch", "delete")
        ]
        assert len(operations) >= 5
        for method, path in operations:
            for headers in (
                {},
                {"authorization": "Bearer not-the-token"},
                {"authorization": API_TOKEN},
            ):
                response = await anonymous.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (method, path, headers)
                assert response.json()["error"]["code"]


async def test_health_and_metrics_show_nothing_secret(deployment: Deployment) -> None:
    """/healthz, /readyz, /metrics and /openapi.json hold none of the configured secrets."""
    async with deployment.daemon(), httpx.AsyncClient(base_url=deployment.url) as anonymous:
        texts = [(await anonymous.get(p)).text for p in ("/healthz", "/readyz", "/metrics",
                                                          "/openapi.json")]
    for secret in (API_TOKEN, SINK_SECRET, DEFAULT_CLIENT_SECRET, DEFAULT_HMAC_KEY):
        assert not any(secret in text for text in texts), secret


async def test_intake_body_over_the_limit_is_413(deployment: Deployment) -> None:
    """A 2 MiB contract or send request is refused with 413 and nothing is created."""
    async with deployment.daemon(), deployment.api() as api:
        request = contract_request("crm-huge-1")
        request["contract_data"]["notes"] = "x" * (2 << 20)
        response = await api.post("/v1/contracts", json=request)
        assert response.status_code == 413
        assert (await api.get("/v1/contracts/crm-huge-1")).status_code == 404
        send = await api.post("/v1/contracts/crm-huge-1/send", json={"notes": "x" * (2 << 20)})
        assert send.status_code == 413


async def test_hostile_external_ids_are_accepted_safely_or_refused_with_422(
    deployment: Deployment,
) -> None:
    """Empty, 10 KB, ../, NUL, unicode and %2F ids: 202 and routable, or 422 naming the field.

    Accepted ones go through the whole flow; each document stays in the documents folder."""
    async with deployment.daemon(), deployment.api() as api:
        for external_id in REFUSED:
            response = await api.post("/v1/contracts", json=contract_request(external_id))
            assert response.status_code == 422, (external_id, response.text)
            fields = [e["field"] for e in response.json()["error"]["fields"]]
            assert fields == ["external_metadata.id"], (external_id, response.text)
            for suffix in ("", "/events", "/send"):
                method = "POST" if suffix == "/send" else "GET"
                path = f"/v1/contracts/{quoted(external_id)}{suffix}"
                answer = await api.request(method, path)
                assert answer.status_code < 500, path
                if external_id not in ("", ".", ".."):  # clients remove those segments
                    # Not found as a contract, or as a route: a JSON error either way.
                    assert answer.status_code in (404, 405), (path, answer.status_code)
                    assert answer.json()["error"]["code"], path
        for external_id in HOSTILE_ACCEPTED:
            response = await api.post("/v1/contracts", json=contract_request(external_id))
            assert response.status_code == 202, (external_id, response.text)
            assert response.json()["external_id"] == external_id
            view = await api.get(f"/v1/contracts/{quoted(external_id)}")
            assert view.status_code == 200, (external_id, view.text)
            assert view.json()["external_id"] == external_id
            events = await api.get(f"/v1/contracts/{quoted(external_id)}/events")
            assert events.json()["external_id"] == external_id

        async def all_synced() -> bool:
            syncs = await contracts_by_sync(api)
            return all(syncs.get(i) == "synced" for i in HOSTILE_ACCEPTED)

        await wait_for(all_synced, seconds=90, what="the hostile ids synced")
        views = [
            (await api.get(f"/v1/contracts/{quoted(i)}")).json() for i in HOSTILE_ACCEPTED
        ]
    root = (deployment.tmp / "documents").resolve()
    for view in views:
        path = (root / view["document"]["path"]).resolve()
        assert path.parent == root, path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(root)) == sorted(Path(v["document"]["path"]).name for v in views)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


PASSWORD = "Hunter2-db-password"
UNREACHABLE_DATABASE = f"postgresql://spotsync:{PASSWORD}@127.0.0.1:1/spotsync"
# libpq and asyncpg also take the password as a query parameter.
UNREACHABLE_DATABASE_QUERY = f"postgresql://spotsync@127.0.0.1:1/spotsync?password={PASSWORD}"


def spotsync_env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTSYNC_", "SPOTDRAFT_"))}
    return {
        **env,
        "SPOTSYNC_API_TOKEN": API_TOKEN,
        "SPOTDRAFT_BASE_URL": "http://127.0.0.1:9",
        "SPOTDRAFT_CLIENT_ID": "client",
        "SPOTDRAFT_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "SPOTDRAFT_HMAC_KEY": DEFAULT_HMAC_KEY,
        **changes,
    }


# A mistyped port: the driver cannot even parse it.
MALFORMED_DATABASE = f"postgresql://spotsync:{PASSWORD}@127.0.0.1:5432x/spotsync"


@pytest.mark.parametrize(
    "database", [UNREACHABLE_DATABASE, UNREACHABLE_DATABASE_QUERY, MALFORMED_DATABASE]
)
@pytest.mark.parametrize(
    "command",
    [["run"], ["events"], ["replay"], ["parked"], ["reconcile"], ["projections", "rebuild"]],
)
async def test_database_failures_are_one_line_without_the_password(
    command: list[str], database: str
) -> None:
    """An unreachable database is one error line naming the problem, never the URL's password."""
    result = await anyio.run_process(
        [sys.executable, "-m", "daemon", *command],
        env=spotsync_env(SPOTSYNC_DATABASE=database, SPOTSYNC_LISTEN="127.0.0.1:0"),
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert PASSWORD not in stderr + result.stdout.decode()
    assert stderr.count("\n") == 1, stderr
    assert "PostgreSQL" in stderr


async def test_run_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    """`spotsync run` on a busy port says so in one line and exits 2, without a traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = await anyio.run_process(
            [sys.executable, "-m", "daemon", "run"],
            env=spotsync_env(
                SPOTSYNC_DATABASE=str(tmp_path / "spotsync.db"), SPOTSYNC_LISTEN=f"127.0.0.1:{port}"
            ),
            check=False,
        )
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.count("\n") == 1, stderr
    assert f"cannot listen on 127.0.0.1:{port}" in stderr
