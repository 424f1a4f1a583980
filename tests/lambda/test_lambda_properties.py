"""Property tests: hostile input never yields a 5xx, and no filename or user escapes its prefix."""

from __future__ import annotations

import json

from apigw_events import http_event, rest_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exportsync_api.app import Dependencies, handle
from exportsync_api.keys import object_key, safe_filename, user_prefix

_SHA = "0" * 64
_FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(name=st.text(), user=st.text(min_size=1, max_size=128))
@settings(max_examples=500)
def test_keys_never_leave_the_user_prefix(name: str, user: str) -> None:
    key = object_key(user, _SHA, name)
    prefix = user_prefix(user)
    assert key.startswith(prefix)
    segments = key.split("/")
    assert len(segments) == 4
    assert segments[2] == _SHA
    assert all(segment not in ("", ".", "..") for segment in segments)
    assert "\\" not in key
    assert all(ch.isprintable() for ch in key)


@given(a=st.text(min_size=1, max_size=64), b=st.text(min_size=1, max_size=64))
def test_distinct_users_get_distinct_prefixes(a: str, b: str) -> None:
    if a != b:
        assert user_prefix(a) != user_prefix(b)


@given(name=st.text())
def test_safe_filename_is_idempotent(name: str) -> None:
    once = safe_filename(name)
    assert safe_filename(once) == once


@_FAST
@given(body=st.binary(max_size=600), boundary=st.text(max_size=30))
def test_random_upload_bodies_never_5xx(
    memory_deps: Dependencies, body: bytes, boundary: str
) -> None:
    content_type = f"multipart/form-data; boundary={boundary}"
    response = handle(rest_event("/upload", body, content_type=content_type), None, memory_deps)
    assert 200 <= response["statusCode"] < 500


@_FAST
@given(
    parts=st.lists(
        st.tuples(
            st.sampled_from(["file", "manifest", "user_id", "other", ""]),
            st.one_of(st.none(), st.text(max_size=30)),
            st.binary(max_size=40),
        ),
        max_size=6,
    )
)
def test_wellformed_multipart_with_odd_parts_never_5xx(
    memory_deps: Dependencies, parts: list[tuple[str, str | None, bytes]]
) -> None:
    chunks: list[bytes] = []
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        header = f"--BOUNDARY\r\nContent-Disposition: {disposition}\r\n\r\n"
        chunks.append(header.encode("utf-8", "surrogatepass") + data + b"\r\n")
    body = b"".join(chunks) + b"--BOUNDARY--\r\n"
    event = rest_event("/upload", body, content_type="multipart/form-data; boundary=BOUNDARY")
    response = handle(event, None, memory_deps)
    assert 200 <= response["statusCode"] < 500
    for key in memory_deps.objects.objects:  # type: ignore[attr-defined]
        assert key.startswith("uploads/alice/")


@_FAST
@given(
    payload=st.one_of(st.binary(max_size=200), _json_values.map(lambda v: json.dumps(v).encode()))
)
def test_random_session_and_presign_bodies_never_5xx(
    memory_deps: Dependencies, payload: bytes
) -> None:
    for path in ("/session", "/presign"):
        for event in (rest_event(path, payload), http_event(path, payload, binary=True)):
            assert 200 <= handle(event, None, memory_deps)["statusCode"] < 500


@_FAST
@given(
    sessions=st.lists(
        st.dictionaries(st.sampled_from(["user_id", "timestamp", "x", "y"]), _json_values),
        max_size=5,
    )
)
def test_session_batches_of_random_objects_never_5xx(
    memory_deps: Dependencies, sessions: list[dict[str, object]]
) -> None:
    body = json.dumps({"sessions": sessions}).encode()
    response = handle(http_event("/session", body), None, memory_deps)
    assert 200 <= response["statusCode"] < 500
