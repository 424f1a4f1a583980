"""Build API Gateway proxy events for the Lambda tests from the JSON templates in tests/events/.

The templates are Powertools' published samples (REST payload 1.0 and HTTP API payload 2.0) with
the fields a usage-plan REST API fills (identity.apiKey, identity.apiKeyId).
"""

from __future__ import annotations

import base64
import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["EVENTS_DIR", "FAKE_API_KEY", "body_of", "http_event", "load_event", "rest_event"]

EVENTS_DIR = Path(__file__).parent.parent / "events"
# The value in the REST template's identity.apiKey: it must never show up in output.
FAKE_API_KEY = "FAKE-api-key-value-never-logged"


@cache
def _load(name: str) -> str:
    return (EVENTS_DIR / name).read_text(encoding="utf-8")


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``tests/events/{name}``."""
    value = json.loads(_load(name))
    assert isinstance(value, dict)
    return copy.deepcopy(value)


def _body(body: bytes | str | None, binary: bool) -> tuple[str | None, bool]:
    if body is None:
        return None, False
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if binary:
        return base64.b64encode(raw).decode("ascii"), True
    return raw.decode("utf-8"), False


def rest_event(
    path: str,
    body: bytes | str | None = None,
    *,
    method: str = "POST",
    content_type: str = "application/json",
    api_key_id: str | None = "kid-alice",
    binary: bool = True,
) -> dict[str, Any]:
    """A REST API (v1) proxy event; ``binary`` mimics a binary media type (base64 body)."""
    event = load_event("apigw-rest-v1.json")
    event["resource"] = event["path"] = event["requestContext"]["resourcePath"] = path
    event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["headers"]["Content-Type"] = content_type
    event["multiValueHeaders"]["Content-Type"] = [content_type]
    identity = event["requestContext"]["identity"]
    if api_key_id is None:
        identity.pop("apiKey")
        identity.pop("apiKeyId")
    else:
        identity["apiKeyId"] = api_key_id
    event["body"], event["isBase64Encoded"] = _body(body, binary)
    return event


def http_event(
    path: str,
    body: bytes | str | None = None,
    *,
    method: str = "POST",
    content_type: str = "application/json",
    stage: str = "$default",
    binary: bool = False,
) -> dict[str, Any]:
    """An HTTP API (v2) proxy event (no API key identity; a named stage prefixes rawPath)."""
    event = load_event("apigw-http-v2.json")
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = raw_path
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {path}"
    event["requestContext"]["http"]["method"] = method
    event["requestContext"]["stage"] = stage
    event["headers"]["content-type"] = content_type
    event["body"], event["isBase64Encoded"] = _body(body, binary)
    return event


def body_of(response: dict[str, Any]) -> Any:
    """The JSON body of a proxy response (checking that it is declared and parses as JSON)."""
    assert response["headers"]["Content-Type"] == "application/json"
    return json.loads(response["body"])
