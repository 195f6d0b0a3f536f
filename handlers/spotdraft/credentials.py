"""Where SpotDraft is and who spotsync is to it. The secret never shows in a repr."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from handlers.spotdraft.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class SpotDraftCredentials:
    """The regional base url and the ``client-id``/``client-secret`` pair (plus ``user-email``).

    ``base_url`` is the host root, e.g. ``https://api.us.spotdraft.com``; a trailing
    ``/api`` (as SpotDraft's server list writes it) or slash is dropped, because spotsync
    writes every path in full.
    """

    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    user_email: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"SPOTDRAFT_BASE_URL {self.base_url!r} is not an http(s) url; "
                "use the workspace region's root, e.g. https://api.us.spotdraft.com"
            )
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ConfigurationError(
                "SPOTDRAFT_BASE_URL must be a plain url without user, query or fragment, "
                "e.g. https://api.us.spotdraft.com"
            )
        path = parts.path.rstrip("/")
        if path.endswith("/api"):
            path = path[: -len("/api")]
        object.__setattr__(self, "base_url", urlunsplit((parts.scheme, parts.netloc, path, "", "")))
        if not self.client_id.strip():
            raise ConfigurationError("SPOTDRAFT_CLIENT_ID is empty; set the API client id")
        if not self.client_secret.strip():
            raise ConfigurationError("SPOTDRAFT_CLIENT_SECRET is empty; set the API client secret")

    def __repr__(self) -> str:
        return (
            f"SpotDraftCredentials(base_url={self.base_url!r}, client_id={self.client_id!r}, "
            f"client_secret='***', user_email={self.user_email!r})"
        )

    __str__ = __repr__

    def headers(self) -> dict[str, str]:
        """The authentication headers of every API request (never of a download)."""
        headers = {"client-id": self.client_id, "client-secret": self.client_secret}
        if self.user_email:
            headers["user-email"] = self.user_email
        return headers
