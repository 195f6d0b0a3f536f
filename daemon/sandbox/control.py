"""The sandbox's own endpoints: ``/_sandbox/…`` for tests and operators, ``/_files/…``.

Control endpoints need no SpotDraft credentials and do not count toward the rate
limit. ``/_files/{name}?signature={token}`` plays the storage bucket behind a download
url: no auth (the signature in the query is the capability, as in a signed url), 403 once
the url has expired or when the signature is for another file.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from daemon.sandbox.contracts import LifecycleError
from daemon.sandbox.gate import detail
from daemon.sandbox.options import Faults, FaultsError

if TYPE_CHECKING:
    from daemon.sandbox.server import Sandbox


def routes(sb: Sandbox) -> list[Route]:
    async def contracts(request: Request) -> Response:
        return JSONResponse({"contracts": sb.contracts()})

    async def advance(request: Request) -> Response:
        composite_id = request.path_params["composite_id"]
        try:
            status = await sb.advance(composite_id)
        except KeyError:
            return detail(404, f"Contract {composite_id} was not found.")
        except LifecycleError as exc:
            return detail(409, str(exc))
        return JSONResponse({"id": composite_id, "contract_status": status})

    async def get_faults(request: Request) -> Response:
        return JSONResponse(sb.faults.to_json())

    async def put_faults(request: Request) -> Response:
        try:
            data = json.loads(await request.body())
        except ValueError as exc:
            return JSONResponse({"detail": f"faults: not JSON ({exc})", "field": "faults"},
                                status_code=400)
        try:
            faults = Faults.from_json(data, base=sb.faults)
        except FaultsError as exc:
            return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=400)
        sb.set_faults(faults)
        return JSONResponse(faults.to_json())

    async def stats(request: Request) -> Response:
        return JSONResponse(sb.stats.to_json())

    async def webhooks(request: Request) -> Response:
        return JSONResponse({"deliveries": [
            {"url": d.url, "activity": d.activity, "contract_id": d.contract_id,
             "attempts": d.attempts, "status": d.status, "delivered": d.delivered,
             "duplicate": d.duplicate,
             # What was sent, so a test can find the very delivery in the receiver's log.
             "body": d.body.decode("utf-8"), "signature": d.signature}
            for d in sb.sender.deliveries
        ]})

    async def document(request: Request) -> Response:
        pdf = sb.document(request.path_params["composite_id"])
        if pdf is None:
            return detail(404, "No executed document for this contract.")
        return Response(pdf, media_type="application/pdf")

    async def download(request: Request) -> Response:
        found = sb.redeem_download(request.query_params.get("signature", ""),
                                   request.path_params["file_name"])
        if isinstance(found, str):
            sb.stats.record(FILES, 403)
            return _denied(*_DENIALS[found])
        pdf, file_name = found
        sb.stats.record(FILES, 200)
        return Response(pdf, media_type="application/pdf",
                        headers={"Content-Disposition": content_disposition(file_name)})

    return [
        Route("/_sandbox/contracts", contracts, methods=["GET"]),
        Route("/_sandbox/contracts/{composite_id}/advance", advance, methods=["POST"]),
        Route("/_sandbox/faults", get_faults, methods=["GET"]),
        Route("/_sandbox/faults", put_faults, methods=["PUT"]),
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/webhooks", webhooks, methods=["GET"]),
        Route("/_sandbox/documents/{composite_id}", document, methods=["GET"]),
        Route("/_files/{file_name}", download, methods=["GET"]),
    ]


FILES = "GET /_files/{file_name}"
# As a storage bucket answers a signed url that has expired (or was forged), and one
# whose signature was made for another path.
_DENIALS = {
    "expired": ("AccessDenied", "Request has expired"),
    "mismatch": ("SignatureDoesNotMatch", "The request signature we calculated does not "
                 "match the signature you provided."),
}


def _denied(code: str, message: str) -> Response:
    return Response(
        f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>"
        f"<Message>{message}</Message></Error>",
        status_code=403, media_type="application/xml",
    )


def content_disposition(file_name: str) -> str:
    """RFC 6266: an ASCII fallback, and the real name (any Unicode) as ``filename*``.

    A header is latin-1 on the wire, so a name with other characters cannot go as is."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in file_name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


def slash_redirect(routes: list[Route], sb: Sandbox) -> object:
    """The router's fallback: 302 to the other trailing-slash form when that one exists.

    SpotDraft answers a trailing-slash mismatch with 302 (not 307/308 as frameworks
    default to), which is why a client must not follow redirects blindly.
    """
    from starlette.routing import Match

    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        other = path[:-1] if path.endswith("/") else path + "/"
        probe = {**scope, "path": other}
        if path.startswith("/api/") and any(
            route.matches(probe)[0] != Match.NONE for route in routes
        ):
            query = scope.get("query_string", b"").decode("latin-1")
            location = other + (f"?{query}" if query else "")
            sb.stats.record("302 slash mismatch", 302)
            response: Response = Response(status_code=302, headers={"Location": location})
        else:
            response = detail(404, "Not found.")
        await response(scope, receive, send)

    return fallback
