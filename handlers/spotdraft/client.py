"""The async SpotDraft client the handlers use: one method per operation spotsync needs.

Every call waits for a slot of the shared :class:`RateBudget`, retries transient failures
(429, 5xx, timeouts, connection errors) with backoff, and returns a :class:`Result` whose
``exchanges`` are the attempts to record as events. Redirects are never followed: a 302
from SpotDraft means a wrong url or slash and becomes a :class:`ConfigurationError`.

Create and send are not idempotent (SpotDraft has no idempotency key). After a timeout
or 5xx the request may have been carried out, so those two calls retry only failures
that certainly happened before SpotDraft acted (429, connection refused) and otherwise
raise :class:`OutcomeUnknownError`: the caller looks the contract up before calling again.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import anyio
import httpx

from handlers.spotdraft.attempts import Attempts, Reply, read_reply
from handlers.spotdraft.credentials import SpotDraftCredentials
from handlers.spotdraft.downloads import check_file_name, stream_to_file, unstorable
from handlers.spotdraft.errors import UnexpectedResponseError
from handlers.spotdraft.exchange import DownloadedFile, Exchange, Result
from handlers.spotdraft.pacing import Clock, RateBudget, Sleep
from handlers.spotdraft.retry import RetryPolicy

CONTRACTS = "/api/v2.1/public/contracts"
TEMPLATES = "/api/v2.1/public/templates"
DOWNLOAD_FORMATS = ("PDF", "DOCX", "DOCX_WITH_FALLBACK_TO_PDF")
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0, pool=10.0)
DEFAULT_MAX_DOWNLOAD = 200 * 1024 * 1024
_COMPOSITE_ID = re.compile(r"^[HT\-0-9]+$")
_TEMPLATE_ID = re.compile(r"^[0-9]+$")


class SpotDraftClient:
    """SpotDraft's public API v2.1, for the operations spotsync uses.

    Use as an async context manager; it owns (and closes) its ``httpx.AsyncClient``.
    Give every client of one workspace the same ``budget`` so they share its rate.
    """

    def __init__(
        self,
        credentials: SpotDraftCredentials,
        *,
        budget: RateBudget | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_attempts: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        pace_downloads: bool = False,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD,
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        self._credentials = credentials
        self.budget = budget if budget is not None else RateBudget()
        self._attempts = Attempts(
            credentials.base_url,
            self.budget,
            retry if retry is not None else RetryPolicy(max_attempts=max_attempts),
            sleep=sleep,
            clock=clock,
            on_exchange=on_exchange,
        )
        # Download urls point at SpotDraft's file host (signed, temporary urls), which is
        # not the API and not under its per-workspace limit; pacing them would only slow
        # the API calls that are. Turn on if a deployment's file host shares the limit.
        self._pace_downloads = pace_downloads
        self._max_download_bytes = max_download_bytes
        self._http = httpx.AsyncClient(
            base_url=credentials.base_url,
            timeout=timeout,
            follow_redirects=False,
            transport=transport,
            headers={"accept": "application/json", "user-agent": "spotsync"},
        )

    def __repr__(self) -> str:
        return f"SpotDraftClient(base_url={self._credentials.base_url!r}, budget={self.budget!r})"

    @property
    def base_url(self) -> str:
        return self._credentials.base_url

    async def __aenter__(self) -> Self:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- operations ---------------------------------------------------------------

    async def create_contract(self, payload: dict[str, Any]) -> Result[dict[str, Any]]:
        """``POST /api/v2.1/public/contracts/``: the new contract (``id``, ``contract_id``...)."""
        reply, exchanges = await self._api(
            "create_contract", "POST", f"{CONTRACTS}/", payload, idempotent=False
        )
        return Result(self._object(reply, exchanges, "create_contract", ("id",)), exchanges)

    async def send_to_counterparties(
        self, composite_id: str, body: dict[str, Any] | None = None
    ) -> Result[dict[str, Any]]:
        """``POST .../{composite_id}/send_to_counterparties``; SpotDraft answers 200 (no body).

        ``attachment_formats`` is required by SpotDraft's description, with at least one
        format; when the body names none (absent or an empty list), PDF is sent, which is
        what SpotDraft assumes for the guide's ``{}``.
        """
        given = body or {}
        request = {**given, "attachment_formats": given.get("attachment_formats") or ["PDF"]}
        path = f"{CONTRACTS}/{_composite(composite_id)}/send_to_counterparties"
        reply, exchanges = await self._api(
            "send_to_counterparties", "POST", path, request, idempotent=False
        )
        value = reply.body if isinstance(reply.body, dict) else {}
        return Result(value, exchanges)

    async def get_status(self, composite_id: str) -> Result[dict[str, Any]]:
        """``GET .../{composite_id}/status``: ``{contract_status, contract_name}``."""
        path = f"{CONTRACTS}/{_composite(composite_id)}/status"
        reply, exchanges = await self._api("get_status", "GET", path)
        return Result(self._object(reply, exchanges, "get_status", ("contract_status",)), exchanges)

    async def get_key_pointers(self, composite_id: str) -> Result[list[dict[str, Any]]]:
        """``GET .../{composite_id}/key_pointers``: a bare array of key pointers."""
        path = f"{CONTRACTS}/{_composite(composite_id)}/key_pointers"
        reply, exchanges = await self._api("get_key_pointers", "GET", path)
        return Result(self._array(reply, exchanges, "get_key_pointers"), exchanges)

    async def get_download_link(
        self, composite_id: str, format: str = "PDF"
    ) -> Result[dict[str, Any]]:
        """``POST .../{composite_id}/download_link``: ``{url, file_name, current_version_id}``."""
        wanted = format.upper()
        if wanted not in DOWNLOAD_FORMATS:
            raise ValueError(f"format must be one of {', '.join(DOWNLOAD_FORMATS)}, not {format!r}")
        path = f"{CONTRACTS}/{_composite(composite_id)}/download_link"
        reply, exchanges = await self._api("get_download_link", "POST", path, {"format": wanted})
        value = self._object(reply, exchanges, "get_download_link", ("url", "file_name"))
        # The url's query is its signature, a short-lived credential: events keep the rest.
        last = exchanges[-1]
        recorded = {**last.response_body, "url": without_query(str(value["url"]))}
        exchanges = (*exchanges[:-1], dataclasses.replace(last, response_body=recorded))
        return Result(value, exchanges)

    async def find_by_external_id(self, external_id: str) -> Result[list[dict[str, Any]]]:
        """``GET .../by_external_metadata/{id}``: every contract carrying this external id."""
        path = f"{CONTRACTS}/by_external_metadata/{path_segment(external_id)}"
        reply, exchanges = await self._api("find_by_external_id", "GET", path)
        return Result(self._array(reply, exchanges, "find_by_external_id"), exchanges)

    async def get_template_metadata(self, template_id: int | str) -> Result[dict[str, Any]]:
        """``GET /api/v2.1/public/templates/{id}/metadata``: the template's fields."""
        text = str(template_id)
        if not _TEMPLATE_ID.match(text):
            raise ValueError(f"a template id is a number, not {template_id!r}")
        path = f"{TEMPLATES}/{text}/metadata"
        reply, exchanges = await self._api("get_template_metadata", "GET", path)
        return Result(self._object(reply, exchanges, "get_template_metadata", ()), exchanges)

    async def download(self, url: str, dest_dir: Path, file_name: str) -> Result[DownloadedFile]:
        """Store the file behind a download url as ``dest_dir/file_name``, whole or not at all.

        Streams to a temporary file in ``dest_dir``, fsyncs it and renames it into place;
        no credentials are sent (the url is signed). The exchange records the url's path
        without its query, which carries the signature.
        """
        check_file_name(file_name)
        target = httpx.URL(url)
        if target.scheme not in ("http", "https") or not target.host:
            raise ValueError("a download url must be an absolute http(s) url")
        dest = Path(dest_dir)
        try:
            await anyio.Path(dest).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise unstorable(file_name, dest, exc) from exc

        async def fetch() -> Reply:
            async with self._http.stream("GET", target, follow_redirects=True) as response:
                if not response.is_success:
                    await response.aread()
                    return read_reply(response)
                stored = await stream_to_file(
                    response.aiter_bytes(), dest, file_name, self._max_download_bytes
                )
                recorded = {"file_name": file_name, "bytes": stored.bytes, "sha256": stored.sha256}
                return Reply(response.status_code, response.headers, recorded, recorded, stored)

        reply, exchanges = await self._attempts.run(
            "download",
            "GET",
            target.path,
            None,
            fetch,
            idempotent=True,
            paced=self._pace_downloads,
        )
        if not isinstance(reply.value, DownloadedFile):  # pragma: no cover - fetch sets it
            raise UnexpectedResponseError("download produced no file", exchanges=exchanges)
        return Result(reply.value, exchanges)

    # -- plumbing -----------------------------------------------------------------

    async def _api(
        self,
        operation: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        idempotent: bool = True,
    ) -> tuple[Reply, tuple[Exchange, ...]]:
        headers = self._credentials.headers()

        async def send() -> Reply:
            response = await self._http.request(method, path, json=body, headers=headers)
            return read_reply(response)

        return await self._attempts.run(
            operation, method, path, body, send, idempotent=idempotent, paced=True
        )

    @staticmethod
    def _object(
        reply: Reply, exchanges: tuple[Exchange, ...], operation: str, required: tuple[str, ...]
    ) -> dict[str, Any]:
        body = reply.body
        if not isinstance(body, dict) or any(key not in body for key in required):
            raise UnexpectedResponseError(
                f"{operation}: SpotDraft answered {reply.status} with a body that is not the "
                f"documented object (expected keys: {', '.join(required) or 'any'})",
                exchanges=exchanges,
                status=reply.status,
                body=body,
            )
        return body

    @staticmethod
    def _array(
        reply: Reply, exchanges: tuple[Exchange, ...], operation: str
    ) -> list[dict[str, Any]]:
        body = reply.body
        if isinstance(body, list) and all(isinstance(item, dict) for item in body):
            return body
        raise UnexpectedResponseError(
            f"{operation}: SpotDraft answered {reply.status} with a body that is not the "
            "documented array of objects",
            exchanges=exchanges,
            status=reply.status,
            body=body,
        )


def without_query(url: str) -> str:
    """``url`` without its query (where signed urls carry their signature) or fragment."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(query=None, fragment=None))


def _composite(composite_id: str) -> str:
    if not _COMPOSITE_ID.match(composite_id):
        raise ValueError(f"a composite id looks like T-1234 or H-1234, not {composite_id!r}")
    return composite_id


def path_segment(value: str) -> str:
    """``value`` percent-encoded as exactly one path segment (``/``, ``?``, ``#``, ``%`` too).

    A segment of only dots would be collapsed by url normalisation, so its dots are
    encoded as well.
    """
    if not value:
        raise ValueError("an external id must not be empty")
    encoded = quote(value, safe="")
    if set(value) == {"."}:
        encoded = encoded.replace(".", "%2E")
    return encoded
