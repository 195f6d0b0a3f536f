"""What can go wrong talking to SpotDraft, sorted by what the caller should do about it.

    SpotDraftError                  root; every error carries the exchanges (one per attempt)
     +-- TransientError             429, 5xx, timeouts, connection errors: retries ran out
     |    +-- OutcomeUnknownError   a create or send may have happened: look it up, never resend
     |    +-- StorageError          a download arrived but could not be stored: fix the folder
     +-- PermanentError             400, 402, 403, 404, 409 (and other 4xx): fix the request
          +-- ConfigurationError    302 (wrong url or slash), 401 (credentials): fix the settings
          +-- UnexpectedResponseError  a 2xx whose body is not the documented shape

Messages say what to fix. They never contain credentials: headers are not recorded,
and the only urls named are the base url and paths spotsync built itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handlers.spotdraft.exchange import Exchange

# Keys of SpotDraft's error envelope; any other key of a 400 body is a field error.
_ENVELOPE_KEYS = frozenset({"detail", "status_code", "code", "message", "error", "errors"})


class SpotDraftError(Exception):
    """A SpotDraft call failed; ``exchanges`` holds every attempt, to be recorded as events."""

    def __init__(self, message: str, *, exchanges: tuple[Exchange, ...] = ()) -> None:
        super().__init__(message)
        self.message_text = message
        self.exchanges = exchanges

    @property
    def attempts(self) -> int:
        return len(self.exchanges)


class TransientError(SpotDraftError):
    """SpotDraft was busy or unreachable on every attempt; try the work again later."""

    def __init__(
        self,
        message: str,
        *,
        exchanges: tuple[Exchange, ...] = (),
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, exchanges=exchanges)
        self.status = status
        self.retry_after = retry_after


class OutcomeUnknownError(TransientError):
    """A non-idempotent call (create, send) may have reached SpotDraft without an answer.

    Retrying blindly could create a second contract, so the client does not. Look the
    contract up (``find_by_external_id`` or ``get_status``) before calling again.
    """


class StorageError(TransientError):
    """A download arrived but could not be stored (a full disk, a folder spotsync may not
    write to). Nothing SpotDraft did: once the folder is fixed, the work is tried again."""


class PermanentError(SpotDraftError):
    """SpotDraft refused the request; retrying the same request cannot succeed."""

    def __init__(
        self,
        message: str,
        *,
        exchanges: tuple[Exchange, ...] = (),
        status: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, exchanges=exchanges)
        self.status = status
        self.body = body
        details = parse_error_body(body)
        self.detail: str | None = details.detail
        self.code: str | None = details.code
        self.message: str | None = details.message
        self.field_errors: dict[str, Any] | None = details.field_errors


class ConfigurationError(PermanentError):
    """spotsync's SpotDraft settings are wrong (base url, trailing slash or credentials)."""


class UnexpectedResponseError(PermanentError):
    """SpotDraft answered 2xx with a body that is not the shape its API description documents."""


class ErrorDetails:
    """The parts of a SpotDraft error body: ``{"detail"}`` or ``{"detail","code","message"}``."""

    __slots__ = ("code", "detail", "field_errors", "message")

    def __init__(
        self,
        detail: str | None = None,
        code: str | None = None,
        message: str | None = None,
        field_errors: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail
        self.code = code
        self.message = message
        self.field_errors = field_errors


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    return str(value)


def parse_error_body(body: Any) -> ErrorDetails:
    """Read detail, code, message and field errors from any error body SpotDraft sends.

    Field errors come either under ``errors``/``field_errors`` or, Django-REST style, as
    the body's other keys (``{"contract_data": ["Unknown field: foo"]}``).
    """
    if isinstance(body, list):
        return ErrorDetails(detail=_text(body))
    if isinstance(body, str):
        return ErrorDetails(detail=body.strip() or None)
    if not isinstance(body, Mapping):
        return ErrorDetails()
    fields: dict[str, Any] = {}
    for key in ("errors", "field_errors"):
        nested = body.get(key)
        if isinstance(nested, Mapping):
            fields.update(nested)
    for key, value in body.items():
        if key not in _ENVELOPE_KEYS and key != "field_errors":
            fields[str(key)] = value
    detail = body.get("detail")
    if isinstance(detail, Mapping) and not fields:
        # {"detail": {"contract_data": [...]}}: the detail itself is the field map.
        fields = dict(detail)
    return ErrorDetails(
        detail=_text(detail),
        code=_text(body.get("code")),
        message=_text(body.get("message")),
        field_errors=fields or None,
    )


def field_problems(
    field_errors: Mapping[str, Any] | None, prefix: str = ""
) -> list[tuple[str, str]]:
    """Each field an error map mentions, dotted (``contract_data.x``), with its text."""
    problems: list[tuple[str, str]] = []
    for key, value in (field_errors or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            problems.extend(field_problems(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for index, item in enumerate(value):
                problems.extend(field_problems(item, f"{name}[{index}]."))
        else:
            problems.append((name, _text(value) or "invalid"))
    return problems


def field_names(field_errors: Mapping[str, Any] | None) -> list[str]:
    """Dotted names of every field an error map mentions."""
    return [name for name, _ in field_problems(field_errors)]


_WHAT_TO_FIX = {
    400: "SpotDraft rejected the request as invalid input",
    402: "SpotDraft refused it by a business rule or the contract's workflow state",
    403: "the credentials are valid but not allowed to do this",
    404: "SpotDraft does not know this resource, or these credentials cannot see it",
    409: "it conflicts with the resource's current state (duplicate or version mismatch)",
}

_HOW_TO_FIX = {
    400: "fix the request: contract_data keys must match the template's field names exactly, "
    "and non-individual counterparties need organization_name (and an organization_type the "
    "workspace defines, if one is given)",
    402: "check the contract's current status (a send needs DRAFT) and that the template "
    "allows the creator entity (entity_reference_id)",
    403: "check that the API credentials (SPOTDRAFT_CLIENT_ID, SPOTDRAFT_CLIENT_SECRET), and "
    "user-email if set, may use this template or contract",
    404: "check the id, and that the template or contract belongs to this workspace and "
    "region (SPOTDRAFT_BASE_URL)",
    409: "fetch the current state before trying again",
}


def permanent_error_for(
    *,
    operation: str,
    method: str,
    url: str,
    status: int,
    body: Any,
    location: str | None,
    exchanges: tuple[Exchange, ...],
) -> PermanentError:
    """The error, with a message saying what to fix, for a non-retryable status."""
    if 300 <= status < 400:
        return ConfigurationError(
            f"SpotDraft answered {status} to {method} {url} (Location: {location or 'none'}): "
            "a redirect means a wrong base url (http instead of https, wrong region) or a "
            "trailing-slash mismatch; check SPOTDRAFT_BASE_URL",
            exchanges=exchanges,
            status=status,
            body=body,
        )
    details = parse_error_body(body)
    said = "; ".join(part for part in (details.code, details.message or details.detail) if part)
    if status == 401:
        return ConfigurationError(
            f"SpotDraft did not accept the credentials for {operation} (401"
            f"{': ' + said if said else ''}); check SPOTDRAFT_CLIENT_ID and "
            "SPOTDRAFT_CLIENT_SECRET, and that SPOTDRAFT_BASE_URL is the workspace's region",
            exchanges=exchanges,
            status=status,
            body=body,
        )
    what = _WHAT_TO_FIX.get(status, f"SpotDraft answered an unexpected {status}")
    how = _HOW_TO_FIX.get(status, "check the request against SpotDraft's API description")
    problems = field_problems(details.field_errors)
    names = [name for name, _ in problems]
    fields = "".join(f"; {name}: {text}" for name, text in problems)
    if status == 400 and names:
        how = f"correct these fields: {', '.join(names)}"
    problem = f"{operation} failed ({status}): {what}{': ' + said if said else ''}{fields}"
    return PermanentError(
        f"{problem.rstrip('.')}. To fix: {how}",
        exchanges=exchanges,
        status=status,
        body=body,
    )
