"""Configuration (SPEC section 4): environment variables, or a TOML file of the same keys.

In the TOML file a key is the variable's name in lower case without its prefix
(``SPOTSYNC_RATE_LIMIT`` → ``rate_limit``, ``SPOTDRAFT_BASE_URL`` → ``base_url``);
the environment wins over the file.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def _secret_field() -> Any:
    return field(default=None, repr=False)


@dataclass(frozen=True)
class Settings:
    database: str = "./spotsync.db"
    listen: str = "127.0.0.1:8080"
    api_token: str | None = _secret_field()
    base_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = _secret_field()
    hmac_key: str | None = _secret_field()
    rate_limit: float = 10.0
    spotdraft_timeout: float = 30.0
    documents_dir: str = "./documents"
    sink_url: str | None = None
    sink_secret: str | None = _secret_field()
    reconcile_interval: float = 60.0
    reconcile_stale_after: float = 15 * 60.0
    reconcile_batch: int = 50

    @property
    def listen_host(self) -> str:
        # An IPv6 address is written in brackets before its port: [::1]:8080.
        return self.listen.rpartition(":")[0].removeprefix("[").removesuffix("]") or "127.0.0.1"

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])


# setting name -> environment variable
ENVIRONMENT: Mapping[str, str] = {
    "database": "SPOTSYNC_DATABASE",
    "listen": "SPOTSYNC_LISTEN",
    "api_token": "SPOTSYNC_API_TOKEN",
    "base_url": "SPOTDRAFT_BASE_URL",
    "client_id": "SPOTDRAFT_CLIENT_ID",
    "client_secret": "SPOTDRAFT_CLIENT_SECRET",
    "hmac_key": "SPOTDRAFT_HMAC_KEY",
    "rate_limit": "SPOTSYNC_RATE_LIMIT",
    "spotdraft_timeout": "SPOTDRAFT_TIMEOUT",
    "documents_dir": "SPOTSYNC_DOCUMENTS_DIR",
    "sink_url": "SPOTSYNC_SINK_URL",
    "sink_secret": "SPOTSYNC_SINK_SECRET",
    "reconcile_interval": "SPOTSYNC_RECONCILE_INTERVAL",
    "reconcile_stale_after": "SPOTSYNC_RECONCILE_STALE_AFTER",
    "reconcile_batch": "SPOTSYNC_RECONCILE_BATCH",
}

_DURATIONS = {"reconcile_interval", "reconcile_stale_after", "spotdraft_timeout"}
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``250ms`` → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|)\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 60s, 15m or 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from defaults, then the TOML file, then the environment, then ``overrides``."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    if config_file is not None:
        try:
            raw.update(tomllib.loads(Path(config_file).read_text()))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from exc
        if "timeout" in raw:  # SPOTDRAFT_TIMEOUT, by the file's rule (no prefix)
            raw["spotdraft_timeout"] = raw.pop("timeout")
        unknown = sorted(set(raw) - set(ENVIRONMENT))
        if unknown:
            raise ConfigError(f"config file {config_file}: unknown keys {', '.join(unknown)}")
    for name, variable in ENVIRONMENT.items():
        if environ.get(variable):
            raw[name] = environ[variable]
    raw.update({k: v for k, v in overrides.items() if v is not None})

    types = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        label = ENVIRONMENT.get(name, name)
        try:
            values[name] = _convert(name, str(types[name]), value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{label}: {exc}") from None
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    """Refuse values the daemon cannot run with, naming the variable (never a secret's
    value)."""
    if not 0 < settings.rate_limit < math.inf:
        raise ConfigError("SPOTSYNC_RATE_LIMIT: must be a positive number of requests per second")
    if settings.spotdraft_timeout <= 0:
        raise ConfigError("SPOTDRAFT_TIMEOUT: must be a positive duration such as 30s")
    if settings.reconcile_interval <= 0:
        raise ConfigError("SPOTSYNC_RECONCILE_INTERVAL: must be a positive duration such as 60s")
    if settings.reconcile_batch < 0:
        raise ConfigError("SPOTSYNC_RECONCILE_BATCH: must be zero or more")
    for name in ("api_token", "client_id", "client_secret", "sink_secret"):
        value = getattr(settings, name)
        if value is not None and not value.strip():
            raise ConfigError(f"{ENVIRONMENT[name]}: must not be blank")
    scheme, separator, _ = settings.database.partition("://")
    if separator and scheme not in ("postgresql", "postgres"):
        # The URL may hold a password: only its scheme is repeated.
        raise ConfigError(
            f"SPOTSYNC_DATABASE: a SQLite file path or a postgresql:// URL, not {scheme}://"
        )
    for name in ("base_url", "sink_url"):
        url = getattr(settings, name)
        if url is not None and not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", url):
            raise ConfigError(f"{ENVIRONMENT[name]}: not an http(s) URL such as https://host/path")
    try:
        port = settings.listen_port
    except ValueError:
        raise ConfigError(f"SPOTSYNC_LISTEN: {settings.listen!r} is not host:port") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"SPOTSYNC_LISTEN: port {port} is not from 0 to 65535")
    secret = settings.sink_secret
    if secret is not None and secret.startswith("whsec_"):
        # Standard Webhooks receivers base64-decode what follows whsec_ into the key: one
        # that is not base64 would sign what no receiver holding the same secret verifies.
        try:
            sink_key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            sink_key = b""
        if not sink_key:
            raise ConfigError(
                "SPOTSYNC_SINK_SECRET: after whsec_ must come the key in base64 "
                "(the Standard Webhooks form), e.g. whsec_ + base64 of 32 random bytes"
            )
    if settings.hmac_key is not None:
        try:
            key = base64.b64decode(settings.hmac_key.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError("SPOTDRAFT_HMAC_KEY: not valid base64") from None
        if not key:
            # An empty key would make every signature anyone computes with it valid.
            raise ConfigError("SPOTDRAFT_HMAC_KEY: must not be empty")


def _convert(name: str, type_name: str, value: Any) -> Any:
    if isinstance(value, bool):  # TOML's true is no count, rate or duration
        raise ValueError(f"expected a number or text, got {str(value).lower()}")
    if name in _DURATIONS:
        return float(value) if isinstance(value, int | float) else parse_duration(str(value))
    if type_name.startswith("float"):
        return float(value)
    if type_name.startswith("int"):
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value
