"""A local SpotDraft stand-in, faithful to SpotDraft's own API description (SPEC section 7).

Alone, from a shell::

    spotsync sandbox --port 8765 --webhook-url http://127.0.0.1:8080/webhooks/spotdraft \
        --auto-sign 2
    # then point a client at SPOTDRAFT_BASE_URL=http://127.0.0.1:8765 with the printed
    # client-id / client-secret and SPOTDRAFT_HMAC_KEY=<the printed hmac key>

From Python (tests, the demo)::

    async with Sandbox.serve(SandboxOptions(webhook_url=...)) as sandbox:
        sandbox.url                      # SpotDraft base url; paths begin /api/v2.1/public/
        await sandbox.advance("T-1")     # next stage, with its webhooks
        sandbox.set_faults(Faults(api_error_rate=0.2))
        with anyio.fail_after(5):
            await sandbox.wait_until(lambda: len(sandbox.deliveries) >= 6)

    async with Sandbox.running(options) as sandbox:   # no server: httpx.ASGITransport(sandbox.app)

Control endpoints (no SpotDraft auth, not rate limited): ``GET /_sandbox/contracts``,
``POST /_sandbox/contracts/{id}/advance``, ``GET|PUT /_sandbox/faults``,
``GET /_sandbox/stats``, ``GET /_sandbox/webhooks``, ``GET /_sandbox/documents/{id}``.

Sandbox assumptions beyond NOTES.md, where it knowingly differs from SpotDraft:

- ``POST /api/v2.1/public/webhooks/`` takes an ``http://`` url when its host is loopback
  (``127.0.0.1``, ``::1``, ``localhost``), so that a daemon on the same machine receives
  deliveries; any other ``http://`` url is rejected, as SpotDraft rejects every
  non-HTTPS url. Custom header names are compared case-insensitively with openapi's
  rule (start with ``X-``, none of its reserved prefixes).
"""

from __future__ import annotations

from daemon.sandbox.options import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_HMAC_KEY,
    Faults,
    FaultsError,
    SandboxOptions,
)
from daemon.sandbox.server import Sandbox
from daemon.sandbox.webhooks import SIGNATURE_HEADER, Delivery, sign

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_HMAC_KEY",
    "SIGNATURE_HEADER",
    "Delivery",
    "Faults",
    "FaultsError",
    "Sandbox",
    "SandboxOptions",
    "sign",
]
