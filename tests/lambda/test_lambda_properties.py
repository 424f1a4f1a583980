"""Property tests: hostile input never yields a 5xx, and no filename or user escapes its prefix."""

from __future__ import annotations

import gzip
import json

from apigw_events import http_event, rest_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lambda_support import multipart_body

from exportsync_api.app import Dependencies, handle
from exportsync_api.keys import object_key, safe_filename, user_prefix
from exportsync_wire import Kind, Status

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


def _json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()


_presign_entries = st.fixed_dictionaries(
    {},
    optional={
        "filename": st.text(max_size=30) | st.integers(),
        "sha256": st.sampled_from([_SHA, "xyz", None]),
        "size": st.integers(-1, 2**45) | st.booleans(),
        "parts": st.integers(-1, 20_000) | st.none() | st.text(max_size=3),
        "upload_id": st.text(max_size=5) | st.integers(),
    },
)
_batch_parts = st.lists(
    st.one_of(
        st.tuples(
            st.just("file"),
            st.text(max_size=20),
            st.binary(max_size=64) | st.binary(max_size=64).map(gzip.compress),
        ),
        st.tuples(
            st.just("session"), st.none(), _json_values.map(lambda v: json.dumps(v).encode())
        ),
        st.tuples(
            st.just("presign"),
            st.none(),
            st.one_of(
                st.lists(_presign_entries, max_size=3).map(lambda f: json.dumps({"files": f})),
                _json_values.map(json.dumps),
            ).map(str.encode),
        ),
    ),
    max_size=6,
)


@_FAST
@given(parts=_batch_parts, gzip_flags=st.lists(st.booleans(), max_size=6), sized=st.booleans())
def test_random_batches_never_5xx_and_keys_stay_in_the_prefix(
    memory_deps: Dependencies,
    parts: list[tuple[str, str | None, bytes]],
    gzip_flags: list[bool],
    sized: bool,
) -> None:
    files = [(name, data) for kind, name, data in parts if kind == "file"]
    manifest = [
        {"filename": name, "size": 1 if sized else None, "encoding": "gzip" if flag else None}
        for (name, _), flag in zip(files, gzip_flags + [False] * len(files), strict=False)
    ]
    form: list[tuple[str, tuple[str | None, bytes, str]]] = [
        (kind, (name, data, "application/octet-stream")) for kind, name, data in parts
    ]
    form.append(("manifest", (None, json.dumps(manifest).encode(), "application/json")))
    body, content_type = multipart_body(form)
    response = handle(rest_event("/batch", body, content_type=content_type), None, memory_deps)
    assert 200 <= response["statusCode"] < 500
    if response["statusCode"] == 200:
        for result in json.loads(response["body"])["results"]:
            assert result["kind"] in set(Kind)
            assert result["status"] in set(Status)
            if result.get("key"):
                assert result["key"].startswith("uploads/alice/")
