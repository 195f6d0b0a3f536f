"""A local SpotDraft stand-in, faithful to SpotDraft's own API description (SPEC section 7).

    async with Sandbox.serve(SandboxOptions(webhook_url=...)) as sandbox:
        sandbox.url   # SpotDraft base url; paths begin /api/v2.1/public/
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
