"""The SpotDraft client against httpx.MockTransport: paths, headers, parsing, errors, secrets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from structlog.testing import capture_logs

from handlers.spotdraft import (
    ConfigurationError,
    PermanentError,
    RateBudget,
    RetryPolicy,
    SpotDraftClient,
    SpotDraftCredentials,
    SpotDraftError,
    UnexpectedResponseError,
)

SECRET = "s3cr3t-do-not-leak"
ACME = Path(__file__).parent.parent / "data" / "acme_contract.json"
Handler = Callable[[httpx.Request], httpx.Response]


def credentials(**kwargs: Any) -> SpotDraftCredentials:
    values: dict[str, Any] = {
        "base_url": "https://api.us.spotdraft.com",
        "client_id": "client-1",
        "client_secret": SECRET,
    }
    values.update(kwargs)
    return SpotDraftCredentials(**values)


class Recorder:
    """Requests seen by the fake SpotDraft, and the sleeps the client asked for."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await anyio.lowlevel.checkpoint()


def client_for(recorder: Recorder, **kwargs: Any) -> SpotDraftClient:
    return SpotDraftClient(
        kwargs.pop("creds", credentials()),
        budget=RateBudget.unlimited(sleep=recorder.sleep),
        transport=httpx.MockTransport(recorder),
        sleep=recorder.sleep,
        **kwargs,
    )


def answer(status: int, body: Any = None, **headers: str) -> Handler:
    return lambda request: httpx.Response(status, json=body, headers=headers)


CREATED = {"id": "T-1234", "contract_id": 1234, "contract_status": "DRAFT"}


@pytest.mark.anyio
async def test_create_posts_the_payload_to_contracts_with_a_trailing_slash() -> None:
    """create_contract POSTs the payload unchanged to /api/v2.1/public/contracts/."""
    recorder = Recorder(answer(201, CREATED))
    payload = json.loads(ACME.read_text())
    async with client_for(recorder) as client:
        result = await client.create_contract(payload)
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == "https://api.us.spotdraft.com/api/v2.1/public/contracts/"
    assert json.loads(request.content) == payload
    assert result.value == CREATED
    assert result.exchanges[0].status == 201
    assert result.exchanges[0].request_body == payload


@pytest.mark.anyio
async def test_every_call_sends_the_auth_headers() -> None:
    """client-id, client-secret and the optional user-email go on every API request."""
    recorder = Recorder(answer(200, {"contract_status": "DRAFT", "contract_name": "x"}))
    creds = credentials(user_email="ops@example.com")
    async with client_for(recorder, creds=creds) as client:
        await client.get_status("T-1")
    headers = recorder.requests[0].headers
    assert headers["client-id"] == "client-1"
    assert headers["client-secret"] == SECRET
    assert headers["user-email"] == "ops@example.com"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("call", "method", "path"),
    [
        (
            lambda c: c.send_to_counterparties("T-7"),
            "POST",
            "/api/v2.1/public/contracts/T-7/send_to_counterparties",
        ),
        (lambda c: c.get_status("T-7"), "GET", "/api/v2.1/public/contracts/T-7/status"),
        (
            lambda c: c.get_key_pointers("T-7"),
            "GET",
            "/api/v2.1/public/contracts/T-7/key_pointers",
        ),
        (
            lambda c: c.get_download_link("T-7"),
            "POST",
            "/api/v2.1/public/contracts/T-7/download_link",
        ),
        (
            lambda c: c.find_by_external_id("deal-9"),
            "GET",
            "/api/v2.1/public/contracts/by_external_metadata/deal-9",
        ),
        (
            lambda c: c.get_template_metadata(1204),
            "GET",
            "/api/v2.1/public/templates/1204/metadata",
        ),
    ],
)
async def test_paths_match_the_api_description_exactly(
    call: Callable[[SpotDraftClient], Any], method: str, path: str
) -> None:
    """Each operation uses its documented method and path, without a trailing slash."""
    bodies: dict[str, Any] = {
        "status": {"contract_status": "DRAFT", "contract_name": "x"},
        "key_pointers": [],
        "download_link": {"url": "https://files.example/x.pdf", "file_name": "x.pdf"},
        "deal-9": [],
        "metadata": {"attributes": []},
        "send_to_counterparties": None,
    }
    recorder = Recorder(
        lambda request: httpx.Response(200, json=bodies[request.url.path.rsplit("/", 1)[-1]])
    )
    async with client_for(recorder) as client:
        result = await call(client)
    (request,) = recorder.requests
    assert (request.method, request.url.raw_path.decode()) == (method, path)
    assert result.exchanges[0].path == path


@pytest.mark.anyio
async def test_send_defaults_to_pdf_attachments_and_keeps_given_fields() -> None:
    """A send body naming no format (none, or []) becomes {"attachment_formats": ["PDF"]}."""
    recorder = Recorder(lambda request: httpx.Response(200))
    async with client_for(recorder) as client:
        empty = await client.send_to_counterparties("T-7")
        await client.send_to_counterparties("T-7", {"subject": "Please sign"})
        await client.send_to_counterparties("T-7", {"attachment_formats": ["DOCX"]})
        await client.send_to_counterparties("T-7", {"attachment_formats": [], "subject": "Hi"})
    sent = [json.loads(request.content) for request in recorder.requests]
    assert sent == [
        {"attachment_formats": ["PDF"]},
        {"attachment_formats": ["PDF"], "subject": "Please sign"},
        {"attachment_formats": ["DOCX"]},
        {"attachment_formats": ["PDF"], "subject": "Hi"},  # SpotDraft refuses an empty list
    ]
    assert empty.value == {}


@pytest.mark.anyio
async def test_download_link_sends_the_documented_upper_case_format() -> None:
    """format="pdf" (as the guide writes it) is sent as the enum value "PDF"."""
    link = {"url": "https://files.example/x.pdf", "file_name": "x.pdf", "current_version_id": 3}
    recorder = Recorder(answer(200, link))
    async with client_for(recorder) as client:
        result = await client.get_download_link("T-7", format="pdf")
        with pytest.raises(ValueError, match="format"):
            await client.get_download_link("T-7", format="ZIP")
    assert json.loads(recorder.requests[0].content) == {"format": "PDF"}
    assert result.value == link


@pytest.mark.anyio
async def test_the_recorded_download_link_keeps_no_signature() -> None:
    """The caller gets the signed url; the exchange to store keeps it without its query."""
    signed = "https://files.example/T-7.pdf?X-Amz-Signature=abc123&X-Amz-Expires=900"
    recorder = Recorder(answer(200, {"url": signed, "file_name": "T-7.pdf"}))
    async with client_for(recorder) as client:
        result = await client.get_download_link("T-7")
    assert result.value["url"] == signed
    recorded = result.exchanges[-1].to_event_data()["response_body"]
    assert recorded == {"url": "https://files.example/T-7.pdf", "file_name": "T-7.pdf"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("external_id", "segment"),
    [
        ("hubspot-deal-10024", "hubspot-deal-10024"),
        ("a/b", "a%2Fb"),
        ("x?y#z", "x%3Fy%23z"),
        ("100% sure", "100%25%20sure"),
        ("..", "%2E%2E"),
        ("ünïcode", "%C3%BCn%C3%AFcode"),
    ],
)
async def test_external_id_is_sent_as_one_path_segment(external_id: str, segment: str) -> None:
    """Slashes, query marks, percent signs and dot-only ids stay inside one segment."""
    recorder = Recorder(answer(200, []))
    async with client_for(recorder) as client:
        await client.find_by_external_id(external_id)
    raw = recorder.requests[0].url.raw_path.decode()
    assert raw == f"/api/v2.1/public/contracts/by_external_metadata/{segment}"


@pytest.mark.anyio
async def test_find_by_external_id_returns_the_documented_array() -> None:
    """The bare array of contracts comes back as a list; another shape is an error."""
    contracts = [{"id": 1234, "composite_id": "T-1234"}]
    recorder = Recorder(answer(200, contracts))
    async with client_for(recorder) as client:
        assert (await client.find_by_external_id("deal-1")).value == contracts
    recorder.handler = answer(200, {"results": "nope"})
    async with client_for(recorder) as client:
        with pytest.raises(UnexpectedResponseError, match="array"):
            await client.find_by_external_id("deal-1")


@pytest.mark.anyio
async def test_bad_ids_are_refused_before_any_request() -> None:
    """A malformed composite or template id, or an empty external id, is a ValueError."""
    recorder = Recorder(answer(200, {}))
    async with client_for(recorder) as client:
        with pytest.raises(ValueError, match="composite id"):
            await client.get_status("T-1/../../x")
        with pytest.raises(ValueError, match="template id"):
            await client.get_template_metadata("12a")
        with pytest.raises(ValueError, match="empty"):
            await client.find_by_external_id("")
    assert recorder.requests == []


@pytest.mark.anyio
async def test_a_302_is_a_configuration_error_naming_the_url_and_location() -> None:
    """A redirect is not followed; the error names the url asked for and the Location."""
    recorder = Recorder(
        answer(302, None, location="https://api.us.spotdraft.com/api/v2.1/public/contracts")
    )
    creds = credentials(base_url="http://api.us.spotdraft.com")
    async with client_for(recorder, creds=creds) as client:
        with pytest.raises(ConfigurationError) as caught:
            await client.create_contract({"contract_template_id": 1})
    message = str(caught.value)
    assert "http://api.us.spotdraft.com/api/v2.1/public/contracts/" in message
    assert "Location: https://api.us.spotdraft.com/api/v2.1/public/contracts" in message
    assert "SPOTDRAFT_BASE_URL" in message
    assert len(recorder.requests) == 1
    assert caught.value.status == 302


@pytest.mark.anyio
async def test_a_401_is_a_configuration_error_pointing_at_the_credentials() -> None:
    """401 is permanent and says to check SPOTDRAFT_CLIENT_ID and SPOTDRAFT_CLIENT_SECRET."""
    body = {"detail": "Authentication credentials were not provided."}
    recorder = Recorder(answer(401, body))
    async with client_for(recorder) as client:
        with pytest.raises(ConfigurationError) as caught:
            await client.get_status("T-1")
    assert "SPOTDRAFT_CLIENT_ID" in str(caught.value)
    assert "SPOTDRAFT_CLIENT_SECRET" in str(caught.value)
    assert caught.value.detail == body["detail"]
    assert isinstance(caught.value, PermanentError)
    assert len(recorder.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("status", [400, 402, 403, 404, 409, 422])
async def test_client_errors_are_permanent_and_not_retried(status: int) -> None:
    """Each 4xx raises PermanentError after exactly one attempt, with the parsed body."""
    body = {"detail": "nope", "status_code": status, "code": "SD_PUBLIC_00009", "message": "No."}
    recorder = Recorder(answer(status, body))
    async with client_for(recorder) as client:
        with pytest.raises(PermanentError) as caught:
            await client.get_key_pointers("T-1")
    error = caught.value
    assert (error.status, error.detail, error.code, error.message) == (
        status,
        "nope",
        "SD_PUBLIC_00009",
        "No.",
    )
    assert error.body == body
    assert len(recorder.requests) == 1
    assert [exchange.status for exchange in error.exchanges] == [status]
    assert "To fix:" in str(error)


@pytest.mark.anyio
async def test_a_400_field_mismatch_names_the_fields_to_fix() -> None:
    """Field errors are parsed, and the message names each field and its problem."""
    body = {
        "contract_data": {"customer_nam": ["Unknown field."]},
        "counter_party_details": [{"organization_name": ["This field is required."]}],
    }
    recorder = Recorder(answer(400, body))
    async with client_for(recorder) as client:
        with pytest.raises(PermanentError) as caught:
            await client.create_contract({"contract_template_id": 1204})
    message = str(caught.value)
    assert "contract_data.customer_nam: Unknown field." in message
    assert "counter_party_details[0].organization_name: This field is required." in message
    assert caught.value.field_errors == body


@pytest.mark.anyio
async def test_a_402_says_to_check_the_workflow_state() -> None:
    """A business-rule refusal explains itself and points at state and creator entity."""
    body = {"detail": "Contract is not in DRAFT", "code": "SD_PUBLIC_00012"}
    recorder = Recorder(answer(402, body))
    async with client_for(recorder) as client:
        with pytest.raises(PermanentError, match=r"workflow state.*Contract is not in DRAFT"):
            await client.send_to_counterparties("T-1")


@pytest.mark.anyio
async def test_a_2xx_with_the_wrong_shape_is_an_unexpected_response() -> None:
    """A create answer without an id, or a non-JSON body, is reported, not returned."""
    recorder = Recorder(answer(201, {"contract_status": "DRAFT"}))
    async with client_for(recorder) as client:
        with pytest.raises(UnexpectedResponseError, match="id"):
            await client.create_contract({})
    recorder.handler = lambda request: httpx.Response(200, text="<html>maintenance</html>")
    async with client_for(recorder) as client:
        with pytest.raises(UnexpectedResponseError) as caught:
            await client.get_status("T-1")
    assert caught.value.exchanges[0].response_body == "<html>maintenance</html>"


@pytest.mark.anyio
async def test_the_secret_never_appears_in_reprs_exchanges_errors_or_logs() -> None:
    """client-secret is absent from every repr, exchange, error message and log line."""
    recorder = Recorder(answer(503, {"detail": "down"}))
    creds = credentials()
    with capture_logs() as logs:
        async with client_for(recorder, creds=creds, retry=RetryPolicy(max_attempts=2)) as client:
            with pytest.raises(SpotDraftError) as caught:
                await client.create_contract({"contract_template_id": 1, "client_secret": SECRET})
            seen = [repr(creds), str(creds), repr(client), repr(caught.value), str(caught.value)]
    seen += [json.dumps(e.to_event_data()) for e in caught.value.exchanges]
    seen += [json.dumps(line, default=str) for line in logs]
    assert recorder.requests[0].headers["client-secret"] == SECRET  # it was really sent
    for text in seen:
        assert SECRET not in text
    assert caught.value.exchanges[0].request_body["client_secret"] == "[redacted]"


def test_base_url_is_normalised_and_checked() -> None:
    """A trailing /api or slash is dropped; a non-http url is a configuration error."""
    assert credentials(base_url="https://api.eu.spotdraft.com/api/").base_url == (
        "https://api.eu.spotdraft.com"
    )
    assert credentials(base_url="http://127.0.0.1:8000/").base_url == "http://127.0.0.1:8000"
    with pytest.raises(ConfigurationError, match="SPOTDRAFT_BASE_URL"):
        credentials(base_url="api.us.spotdraft.com")
    with pytest.raises(ConfigurationError, match="SPOTDRAFT_CLIENT_SECRET"):
        credentials(client_secret=" ")


@pytest.mark.anyio
async def test_exchanges_are_json_safe_and_cut_long_strings() -> None:
    """to_event_data is JSON-serialisable, and a huge base64 attachment is truncated."""
    recorder = Recorder(lambda request: httpx.Response(200))
    body = {"extra_attachments": [{"name": "a.pdf", "content": "A" * 100_000}]}
    async with client_for(recorder) as client:
        result = await client.send_to_counterparties("T-1", body)
    data = result.exchanges[0].to_event_data()
    encoded = json.dumps(data)
    assert len(encoded) < 5_000
    assert data["request_body"]["extra_attachments"][0]["name"] == "a.pdf"
    assert data["method"] == "POST"
    assert data["status"] == 200
    assert data["attempt"] == 1
    assert data["latency_ms"] >= 0
