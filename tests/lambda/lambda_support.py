"""Shared pieces of the Lambda tests: names of the test bucket/table and resource setup."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

from exportsync_api.app import Dependencies
from exportsync_wire import table

__all__ = [
    "BUCKET",
    "KEY_USERS",
    "REGION",
    "TABLE",
    "Moto",
    "Part",
    "anonymous",
    "create_resources",
    "json_part",
    "multipart_body",
]

# One form part as requests takes it: (name, (filename or None, bytes, content type)).
Part = tuple[str, tuple[str | None, bytes, str]]

BUCKET = "exportsync-test-bucket"
TABLE = "exportsync-test-sessions"
REGION = "us-east-1"
KEY_USERS = {"kid-alice": "alice"}


def create_resources(s3: Any, dynamodb: Any) -> None:
    s3.create_bucket(Bucket=BUCKET)
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=table.KEY_SCHEMA,
        AttributeDefinitions=table.ATTRIBUTE_DEFINITIONS,
        BillingMode="PAY_PER_REQUEST",
    )


def anonymous(deps: Dependencies) -> Dependencies:
    """``deps`` with EXPORTSYNC_ALLOW_ANONYMOUS=1: a request without a key may name its user."""
    settings = dataclasses.replace(deps.settings, allow_anonymous=True)
    return dataclasses.replace(deps, settings=settings)


@dataclass
class Moto:
    deps: Dependencies
    s3: Any
    dynamodb: Any


def json_part(name: str, value: object) -> Part:
    """A ``session`` or ``presign`` part of POST /batch (or the ``manifest``)."""
    return (name, (None, json.dumps(value).encode("utf-8"), "application/json"))


def multipart_body(parts: Sequence[Part]) -> tuple[bytes, str]:
    """A multipart/form-data body with ``parts`` in this order, exactly as requests sends it."""
    if not parts:
        return b"--empty--\r\n", "multipart/form-data; boundary=empty"
    prepared = requests.Request("POST", "http://127.0.0.1/batch", files=list(parts)).prepare()
    assert isinstance(prepared.body, bytes)
    return prepared.body, prepared.headers["Content-Type"]
