"""The v1 proxy event the gateway builds and how it reads the function's answer."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from exportsync_devstack.events import (
    ApiIdentity,
    IncomingRequest,
    MalformedProxyResponse,
    build_rest_event,
    is_binary_media,
    parse_proxy_response,
)

_IDENTITY = ApiIdentity(api_key_id="kid-1", api_key="secret-key-value-000000")
_SAMPLE = Path(__file__).resolve().parents[1] / "events" / "apigw-rest-v1.json"


def _event(request: IncomingRequest) -> dict[str, object]:
    return build_rest_event(
        request, _IDENTITY, stage="devstack", request_id="rid-1", epoch=1_800_000_000.5
    )


def test_multipart_body_reaches_the_function_base64_encoded_byte_exact() -> None:
    body = b"--b\r\n\x00\xff\xfe binary \r\n--b--\r\n"
    headers = [("Content-Type", "multipart/form-data; boundary=b"), ("x-api-key", "k")]
    event = _event(IncomingRequest("POST", "/upload", headers=headers, body=body))
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(str(event["body"])) == body


def test_json_body_reaches_the_function_as_text() -> None:
    body = '{"user_id": "a", "note": "ü"}'.encode()
    headers = [("Content-Type", "application/json")]
    event = _event(IncomingRequest("POST", "/session", headers=headers, body=body))
    assert event["isBase64Encoded"] is False
    assert event["body"] == body.decode("utf-8")


def test_binary_media_types() -> None:
    assert is_binary_media("multipart/form-data; boundary=x")
    assert is_binary_media("application/octet-stream")
    assert not is_binary_media("application/json; charset=utf-8")
    assert not is_binary_media("text/csv")
    assert not is_binary_media(None)


def test_event_carries_identity_route_headers_and_time() -> None:
    headers = [("X-Api-Key", "k"), ("Accept", "a"), ("accept", "b")]
    event = _event(IncomingRequest("POST", "/upload", "x=1&x=2&y=", headers))
    assert (event["resource"], event["path"], event["httpMethod"]) == ("/upload", "/upload", "POST")
    context = event["requestContext"]
    assert isinstance(context, dict)
    assert context["identity"]["apiKeyId"] == "kid-1"
    assert context["identity"]["apiKey"] == "secret-key-value-000000"
    assert (context["stage"], context["requestId"]) == ("devstack", "rid-1")
    assert context["requestTimeEpoch"] == 1_800_000_000_500
    assert context["path"] == "/devstack/upload"
    assert event["multiValueHeaders"] == {"X-Api-Key": ["k"], "Accept": ["a"], "accept": ["b"]}
    assert event["queryStringParameters"] == {"x": "2", "y": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": [""]}
    assert event["body"] is None


def test_event_has_every_field_of_a_real_rest_event() -> None:
    sample = json.loads(_SAMPLE.read_text(encoding="utf-8"))
    event = _event(IncomingRequest("GET", "/upload"))
    assert set(sample) <= set(event)
    context = event["requestContext"]
    assert isinstance(context, dict)
    assert set(sample["requestContext"]) - {"authorizer"} <= set(context)


def test_identity_repr_hides_the_key() -> None:
    assert "secret-key-value" not in repr(_IDENTITY)


def test_proxy_response_decodes_base64_and_merges_headers() -> None:
    result = {
        "statusCode": 201,
        "headers": {"Content-Type": "text/plain", "X-One": "1"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "x-one": ["multi"]},
        "body": base64.b64encode(b"\x00\x01").decode(),
        "isBase64Encoded": True,
    }
    response = parse_proxy_response(result)
    assert response.status == 201
    assert response.body == b"\x00\x01"
    assert ("Set-Cookie", "a=1") in response.headers
    assert ("Set-Cookie", "b=2") in response.headers
    assert ("x-one", "multi") in response.headers
    assert ("X-One", "1") not in response.headers  # multiValueHeaders win, as in API Gateway


@pytest.mark.parametrize(
    "result",
    [
        None,
        "ok",
        {"body": "{}"},
        {"statusCode": "200"},
        {"statusCode": True},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "body": "@@@", "isBase64Encoded": True},
        {"statusCode": 200, "headers": ["x"]},
    ],
)
def test_malformed_proxy_responses_are_rejected(result: object) -> None:
    with pytest.raises(MalformedProxyResponse):
        parse_proxy_response(result)
