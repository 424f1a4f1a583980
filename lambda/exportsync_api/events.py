"""Reading what we need from an API Gateway proxy event (REST v1 or HTTP API v2)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from .errors import bad_request

__all__ = ["api_key_id", "header", "is_v2", "raw_body"]


def is_v2(event: Mapping[str, Any]) -> bool:
    return event.get("version") == "2.0"


def raw_body(event: Mapping[str, Any]) -> bytes:
    """The request body as bytes (Powertools' decoded_body would turn binary into str)."""
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise bad_request("invalid_body", "body is not a string")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("invalid_body", "body is not valid base64") from None
    return body.encode("utf-8", "surrogatepass")


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header, case-insensitively (v1 keeps the client's case, v2 lowercases)."""
    headers = event.get("headers") or {}
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted and isinstance(value, str):
            return value
    return None


def api_key_id(event: Mapping[str, Any]) -> str | None:
    """``requestContext.identity.apiKeyId`` of a REST API behind a usage plan, else None.

    Only the key's id is read: the key value itself (``identity.apiKey``) is never touched.
    """
    if is_v2(event):
        return None  # HTTP APIs have no API keys
    context = event.get("requestContext") or {}
    identity = context.get("identity") if isinstance(context, Mapping) else None
    if not isinstance(identity, Mapping):
        return None
    key_id = identity.get("apiKeyId")
    return key_id if isinstance(key_id, str) and key_id else None
