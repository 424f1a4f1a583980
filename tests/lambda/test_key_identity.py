"""The API key's user wins on every route: a body naming *another* user cannot move the data.

Each test sends a REST event whose identity is the key ``kid-alice`` (user ``alice``) and whose
body names ``mallory``; the item must land under alice, or be refused, never under mallory.
"""

from __future__ import annotations

import hashlib
import json

import requests
from apigw_events import body_of, rest_event
from fakes import MemoryObjectStore, MemorySessionStore
from lambda_support import anonymous, json_part, multipart_body

from exportsync_api.app import Dependencies, handle

OTHER = "mallory"
DATA = b"date,steps\n2026-02-10,8123\n"
SHA = hashlib.sha256(DATA).hexdigest()


def test_upload_form_user_id_cannot_override_the_keys_user(memory_deps: Dependencies) -> None:
    prepared = requests.Request(
        "POST",
        "http://127.0.0.1/upload",
        files=[("file", ("export.csv", DATA, "text/csv"))],
        data={"user_id": OTHER},
    ).prepare()
    assert isinstance(prepared.body, bytes)
    event = rest_event("/upload", prepared.body, content_type=prepared.headers["Content-Type"])
    (result,) = body_of(handle(event, None, memory_deps))["results"]
    assert result["status"] == "stored"
    assert result["key"] == f"uploads/alice/{SHA}/export.csv"
    objects = memory_deps.objects
    assert isinstance(objects, MemoryObjectStore)
    assert list(objects.objects) == [f"uploads/alice/{SHA}/export.csv"]


def test_presign_body_user_id_cannot_override_the_keys_user(memory_deps: Dependencies) -> None:
    request = {"files": [{"filename": "big.csv", "sha256": SHA, "size": len(DATA)}]}
    event = rest_event("/presign", json.dumps(request | {"user_id": OTHER}), binary=False)
    (result,) = body_of(handle(event, None, memory_deps))["results"]
    assert result["status"] == "upload"
    assert result["key"] == f"uploads/alice/{SHA}/big.csv"
    assert f"/{OTHER}/" not in result["url"]


def test_presign_without_identity_uses_the_body_user(memory_deps: Dependencies) -> None:
    """The counterpart: with no key identity and the anonymous mode on (the devstack's, never
    the SAM default) the body's user_id is the user."""
    request = {"files": [{"filename": "big.csv", "sha256": SHA, "size": len(DATA)}]}
    event = rest_event("/presign", json.dumps(request | {"user_id": OTHER}), api_key_id=None)
    (result,) = body_of(handle(event, None, anonymous(memory_deps)))["results"]
    assert result["key"] == f"uploads/{OTHER}/{SHA}/big.csv"


def test_session_for_another_user_is_refused_and_nothing_is_stored(
    memory_deps: Dependencies,
) -> None:
    sessions = {
        "sessions": [
            {"user_id": OTHER, "timestamp": "2026-02-17T10:00:00Z"},
            {"user_id": "alice", "timestamp": "2026-02-17T11:00:00Z"},
        ]
    }
    event = rest_event("/session", json.dumps(sessions))
    results = body_of(handle(event, None, memory_deps))["results"]
    assert [r["status"] for r in results] == ["rejected", "stored"]
    assert results[0]["error"].startswith("user_mismatch")
    store = memory_deps.sessions
    assert isinstance(store, MemorySessionStore)
    assert list(store.items) == [("alice", "2026-02-17T11:00:00Z")]


def test_batch_parts_cannot_name_another_user(memory_deps: Dependencies) -> None:
    """/batch: a user_id part does not move its files or presign asks, and a session naming
    another user is refused while the key's own is stored."""
    presign = {"files": [{"filename": "big.csv", "sha256": SHA, "size": len(DATA)}]}
    body, content_type = multipart_body(
        [
            ("user_id", (None, OTHER.encode(), "text/plain")),
            ("file", ("export.csv", DATA, "text/csv")),
            json_part("presign", presign | {"user_id": OTHER}),
            json_part(
                "session",
                [
                    {"user_id": OTHER, "timestamp": "2026-02-17T10:00:00Z"},
                    {"user_id": "alice", "timestamp": "2026-02-17T11:00:00Z"},
                ],
            ),
        ]
    )
    event = rest_event("/batch", body, content_type=content_type)
    results = body_of(handle(event, None, memory_deps))["results"]
    assert [(r["kind"], r["status"]) for r in results] == [
        ("file", "stored"),
        ("presign", "upload"),
        ("session", "rejected"),
        ("session", "stored"),
    ]
    assert results[0]["key"] == f"uploads/alice/{SHA}/export.csv"
    assert results[1]["key"] == f"uploads/alice/{SHA}/big.csv"
    assert results[2]["error"].startswith("user_mismatch")
    store = memory_deps.sessions
    assert isinstance(store, MemorySessionStore)
    assert list(store.items) == [("alice", "2026-02-17T11:00:00Z")]
