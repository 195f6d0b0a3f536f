"""`spotsync sandbox` as a user runs it: prints its url, serves, stops on SIGINT with 0."""

from __future__ import annotations

import signal
import sys

import anyio
import httpx
import pytest
from anyio.streams.text import TextReceiveStream

pytestmark = pytest.mark.anyio


async def test_command_serves_until_sigint_and_exits_zero() -> None:
    """The printed url answers with the demo credentials; SIGINT ends it with status 0."""
    command = [sys.executable, "-m", "daemon", "sandbox", "--port", "0", "--seed", "5"]
    async with await anyio.open_process(command) as process:
        assert process.stdout is not None
        output = ""
        with anyio.fail_after(20):
            async for chunk in TextReceiveStream(process.stdout):
                output += chunk
                if "Ctrl-C" in output:
                    break
        url = output.split("SpotDraft sandbox at ", 1)[1].split()[0]
        assert "client-secret: sandbox-secret" in output
        headers = {"client-id": "sandbox-client", "client-secret": "sandbox-secret"}
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"{url}/api/v2.1/public/webhooks/hmac_key/",
                                        headers=headers)
        assert response.status_code == 200
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            code = await process.wait()
    assert code == 0


def test_a_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Started on a port something else holds, the sandbox says so in one line, exit 2."""
    from daemon.cli import main
    from daemon.serving import bind

    taken = bind("127.0.0.1", 0)
    port = taken.port
    try:
        assert main(["sandbox", "--port", str(port)]) == 2
    finally:
        taken.sock.close()
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in error
