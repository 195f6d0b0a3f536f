"""What a sandbox is told at start: credentials, webhook target, timing, and faults.

``Faults`` is what ``PUT /_sandbox/faults`` and the ``spotsync sandbox`` fault options
set. Every random choice the sandbox makes is drawn from one ``random.Random(seed)``,
so a run with the same seed and the same sequence of calls misbehaves the same way.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import httpx

DEFAULT_CLIENT_ID = "sandbox-client"
# Demo credentials for a local stand-in: printed by `spotsync sandbox`, not a secret.
DEFAULT_CLIENT_SECRET = "sandbox-secret"  # noqa: S105
DEFAULT_HMAC_KEY = base64.b64encode(b"spotsync-sandbox-webhook-hmac-key-0001").decode("ascii")
DEFAULT_RATE_LIMIT_RPS = 10.0


class FaultsError(ValueError):
    """The faults given are not valid; the message names the field and what it accepts."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


@dataclass(frozen=True)
class Faults:
    """Misbehaviour on demand. Rates are probabilities per request or per delivery."""

    api_error_rate: float = 0.0  # a 5xx before any work is done
    api_timeout_rate: float = 0.0  # the work is done, then its answer is lost (a late 504)
    latency_ms: tuple[int, int] = (0, 0)
    rate_limit_rps: float = DEFAULT_RATE_LIMIT_RPS
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_reorder: bool = False
    webhook_delay_ms: tuple[int, int] = (0, 0)
    # Commits a create, then holds its 201 this long: the "did it happen?" crash window.
    create_delay_ms: int = 0

    def __post_init__(self) -> None:
        for name in ("api_error_rate", "api_timeout_rate", "webhook_drop_rate",
                     "webhook_duplicate_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise FaultsError(name, f"must be a number from 0 to 1, not {value!r}")
        for name in ("latency_ms", "webhook_delay_ms"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise FaultsError(
                    name, f"must be [min, max] with 0 <= min <= max, not {[low, high]}")
        if not (self.rate_limit_rps > 0 and math.isfinite(self.rate_limit_rps)):
            raise FaultsError("rate_limit_rps", "must be a number above 0")
        if self.create_delay_ms < 0:
            raise FaultsError("create_delay_ms", "must be 0 or more")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["latency_ms"] = list(self.latency_ms)
        data["webhook_delay_ms"] = list(self.webhook_delay_ms)
        return data

    @classmethod
    def from_json(cls, data: object, *, base: Faults | None = None) -> Faults:
        """Faults from a JSON object; fields not given keep their value in ``base``."""
        if not isinstance(data, Mapping):
            raise FaultsError("faults", "must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FaultsError(unknown[0], f"is not a fault; known: {', '.join(sorted(known))}")
        values = (base or cls()).to_json()
        for name, value in data.items():
            values[name] = _coerce(name, value)
        return cls(**values)


def _coerce(name: str, value: object) -> object:
    if name == "webhook_reorder":
        if not isinstance(value, bool):
            raise FaultsError(name, "must be true or false")
        return value
    if name in ("latency_ms", "webhook_delay_ms"):
        if (not isinstance(value, list | tuple) or len(value) != 2
                or not all(_is_number(v) for v in value)):
            raise FaultsError(name, "must be [min, max] in milliseconds")
        return (int(value[0]), int(value[1]))
    if not isinstance(value, int | float) or not _is_number(value):
        raise FaultsError(name, "must be a number")
    return int(value) if name == "create_delay_ms" else float(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_range(text: str) -> tuple[int, int]:
    """``"MIN,MAX"`` (or a single number) in milliseconds, as the CLI takes it."""
    parts = [p.strip() for p in text.split(",")]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected MIN,MAX in milliseconds, not {text!r}") from None
    if len(numbers) == 1:
        numbers *= 2
    if len(numbers) != 2:
        raise ValueError(f"expected MIN,MAX in milliseconds, not {text!r}")
    return (numbers[0], numbers[1])


@dataclass(frozen=True)
class SandboxOptions:
    """How a sandbox runs. ``SandboxOptions()`` is a working demo setup."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = field(default=DEFAULT_CLIENT_SECRET, repr=False)
    hmac_key: str = field(default=DEFAULT_HMAC_KEY, repr=False)
    webhook_url: str | None = None
    # Seconds each stage takes after send (REDLINING -> SIGN -> EXECUTED); None: only on command.
    auto_sign: float | None = None
    seed: int = 0
    faults: Faults = Faults()
    host: str = "127.0.0.1"
    port: int = 0
    # How long an `api_timeout_rate` request hangs before its 504: longer than a client waits.
    timeout_hang_s: float = 60.0
    # Pauses between webhook delivery attempts; their count is the number of retries.
    webhook_retry_delays: tuple[float, ...] = (0.2, 1.0, 5.0, 15.0)
    webhook_timeout_s: float = 10.0
    # With webhook_reorder, how long a step waits for the contract's next one to go first.
    webhook_reorder_hold_s: float = 1.0
    # Lifetime of a download url, as SpotDraft's temporary links.
    download_ttl_s: float = 15 * 60
    # Test seam: deliver webhooks through this transport (e.g. an in-process ASGI app).
    webhook_transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        try:
            key = base64.b64decode(self.hmac_key, validate=True)
        except ValueError:
            raise ValueError("hmac_key must be base64") from None
        if not key:
            raise ValueError("hmac_key must not be empty")
        if self.auto_sign is not None and self.auto_sign < 0:
            raise ValueError("auto_sign must be 0 or more seconds")

    @property
    def hmac_key_bytes(self) -> bytes:
        return base64.b64decode(self.hmac_key)
