"""The Lambda side of a REST API proxy integration: build the v1 event, read the proxy answer."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "ApiIdentity",
    "IncomingRequest",
    "MalformedProxyResponse",
    "ProxyResponse",
    "build_rest_event",
    "event_size",
    "is_binary_media",
    "parse_proxy_response",
]

_TEXT_TYPES = ("application/json", "application/x-www-form-urlencoded", "application/xml")


@dataclass(frozen=True)
class IncomingRequest:
    """An HTTP request as the gateway received it (path already without the stage)."""

    method: str
    path: str
    query: str = ""
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    source_ip: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        """The last value of a header, case-insensitively (API Gateway keeps the last one too)."""
        found = None
        for key, value in self.headers:
            if key.lower() == name.lower():
                found = value
        return found


@dataclass(frozen=True)
class ApiIdentity:
    """The usage plan key the request matched. `api_key` is a secret: never shown in a repr."""

    api_key_id: str
    api_key: str = field(repr=False)


def is_binary_media(content_type: str | None) -> bool:
    """Whether the body reaches Lambda base64-encoded.

    The template declares multipart/form-data a binary media type; the devstack also encodes
    anything that is not JSON or text, which keeps arbitrary bytes intact.
    """
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return not (media.startswith("text/") or media in _TEXT_TYPES or media.endswith("+json"))


def _body_field(request: IncomingRequest) -> tuple[str | None, bool]:
    if not request.body:
        return None, False
    if not is_binary_media(request.header("content-type")):
        try:
            return request.body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(request.body).decode("ascii"), True


def build_rest_event(
    request: IncomingRequest,
    identity: ApiIdentity,
    *,
    stage: str,
    request_id: str,
    epoch: float,
    resource: str | None = None,
) -> dict[str, Any]:
    """A REST API (payload 1.0) Lambda proxy event for `request`."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for key, value in request.headers:
        headers[key] = value
        multi_headers.setdefault(key, []).append(value)
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for key, value in parse_qsl(request.query, keep_blank_values=True):
        query[key] = value
        multi_query.setdefault(key, []).append(value)
    body, is_b64 = _body_field(request)
    when = datetime.fromtimestamp(epoch, UTC)
    resource_path = resource if resource is not None else request.path
    return {
        "version": "1.0",
        "resource": resource_path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "devstack",
            "domainName": request.header("host") or "127.0.0.1",
            "domainPrefix": "devstack",
            "extendedRequestId": request_id,
            "httpMethod": request.method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "apiKey": identity.api_key,
                "apiKeyId": identity.api_key_id,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": request.source_ip,
                "user": None,
                "userAgent": request.header("user-agent"),
                "userArn": None,
            },
            "path": f"/{stage}{request.path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": when.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(epoch * 1000),
            "resourceId": "devstack",
            "resourcePath": resource_path,
            "stage": stage,
        },
        "body": body,
        "isBase64Encoded": is_b64,
    }


class MalformedProxyResponse(ValueError):
    """The function's answer is not a valid proxy response (API Gateway answers 502)."""


@dataclass(frozen=True)
class ProxyResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _str_map(value: object, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedProxyResponse(f"{name} must be an object")
    return value


def parse_proxy_response(result: object) -> ProxyResponse:
    """Turn `{statusCode, headers, multiValueHeaders, body, isBase64Encoded}` into HTTP parts."""
    if not isinstance(result, Mapping):
        raise MalformedProxyResponse("the response is not an object")
    status = result.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedProxyResponse("statusCode must be an HTTP status integer")
    headers: list[tuple[str, str]] = []
    multi = _str_map(result.get("multiValueHeaders"), "multiValueHeaders")
    for key, values in multi.items():
        if not isinstance(values, list):
            raise MalformedProxyResponse("multiValueHeaders values must be lists")
        headers.extend((str(key), str(v)) for v in values)
    seen = {key.lower() for key, _ in headers}
    for key, value in _str_map(result.get("headers"), "headers").items():
        if key.lower() not in seen:
            headers.append((str(key), str(value)))
    raw = result.get("body")
    if raw is None:
        body = b""
    elif isinstance(raw, str):
        if result.get("isBase64Encoded"):
            try:
                body = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise MalformedProxyResponse("body is not valid base64") from exc
        else:
            body = raw.encode("utf-8")
    else:
        raise MalformedProxyResponse("body must be a string")
    return ProxyResponse(status, headers, body)


def event_size(event: Mapping[str, Any]) -> int:
    """Bytes of the Invoke payload, the number Lambda's 6 MB request cap applies to."""
    return len(json.dumps(event, separators=(",", ":")).encode("utf-8"))
