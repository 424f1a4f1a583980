"""The daemon refuses, before it spends a request, every session the function would refuse, and
says why in the function's words: both ask ``exportsync_wire.sessions``."""

from __future__ import annotations

import json

import pytest
from boto3.dynamodb.types import DYNAMODB_CONTEXT

from exportsync.sessions import parse_session_file
from exportsync_api.sessions import Rejected, load_json, validate_session
from exportsync_wire import limits
from exportsync_wire import sessions as wire_sessions
from exportsync_wire.sessions import HASH_ATTRIBUTE

TS = "2024-05-01T12:00:00+00:00"


def _server_reason(text: bytes) -> str | None:
    checked = validate_session(load_json(text), None)
    return checked.error if isinstance(checked, Rejected) else None


def _daemon_reason(text: bytes) -> str | None:
    [entry] = parse_session_file(text, default_user_id=None)
    return entry.error


def _session(**fields: object) -> bytes:
    return json.dumps({"user_id": "alice", "timestamp": TS, **fields}).encode()


def _padded(total: int) -> bytes:
    """A session the server counts at ``total`` bytes, its content hash included."""
    head = {"user_id": "alice", "timestamp": TS, "pad": ""}
    fixed = sum(len(k) + len(str(v)) for k, v in head.items()) + len(HASH_ATTRIBUTE) + 64
    return _session(pad="x" * (total - fixed))


REFUSED = {
    "a 3 KB user_id": json.dumps({"user_id": "u" * 3000, "timestamp": TS}).encode(),
    "a 2 KB timestamp": json.dumps({"user_id": "alice", "timestamp": TS + "0" * 2000}).encode(),
    "an empty attribute name": _session(**{"": 1}),
    "an empty name inside a map": _session(m={"": 1}),
    "the reserved attribute": _session(**{HASH_ATTRIBUTE: "x"}),
    "over the checked item size": _padded(limits.ITEM_CHECKED_BYTES + 1),
    "over the size with multi-byte text": _session(pad="é" * (limits.ITEM_CHECKED_BYTES // 2)),
    "NaN": _session(v=float("nan")),
    "a number past DynamoDB's exponent": _session().replace(b"}", b', "v": 1e400}'),
    "a number finer than DynamoDB's": _session().replace(b"}", b', "v": -1e-400}'),
    "a 39-digit integer": _session(v=10**38 + 1),
}


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED.keys())
def test_the_daemon_refuses_what_the_server_refuses_with_its_reason(text: bytes) -> None:
    server = _server_reason(text)
    assert server is not None
    assert _daemon_reason(text) == server


def test_a_session_at_the_checked_size_goes() -> None:
    text = _padded(limits.ITEM_CHECKED_BYTES)
    assert _server_reason(text) is None
    assert _daemon_reason(text) is None


def test_numbers_are_held_to_the_context_boto3_stores_them_with() -> None:
    ours = wire_sessions._NUMBERS
    assert (ours.prec, ours.Emin, ours.Emax) == (
        DYNAMODB_CONTEXT.prec,
        DYNAMODB_CONTEXT.Emin,
        DYNAMODB_CONTEXT.Emax,
    )
    assert {t for t, on in ours.traps.items() if on} == {
        t for t, on in DYNAMODB_CONTEXT.traps.items() if on
    }
