"""Fuzzing whole requests to the function with hypothesis: any path and method, hostile bodies,
forms, headers, JSON values and names, under every identity (the key's user, an unknown key, no
identity with or without a user_id of the request's own), alone, in sequences sharing the stores,
with failing stores, and against moto. test_lambda_fuzz.py fuzzes each route's entries.

Properties, for every case:

* the answer is never a 5xx (except where a store fault is injected: then still never a 5xx, the
  fault is that entry's ``retry`` or ``rejected``);
* the body is JSON: an error object with a known code, or results;
* every result entry has a valid status (and ``kind`` on /batch), with an ``error`` when it is
  ``rejected`` or ``retry``;
* no object key, written or answered, lies outside ``uploads/{caller's user}/``, and no session is
  stored under anyone but the caller.

The number of examples comes from a hypothesis profile chosen by ``EXPORTSYNC_FUZZ``: ``short``
(the default, a few per test inside ``make test``) or ``full`` (``make fuzz``: over 7,000 cases
against the in-memory stores and 300 against moto). With ``EXPORTSYNC_FUZZ_REQUESTS_REPORT=PATH``
the number of cases run is written to PATH.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from apigw_events import http_event, rest_event
from botocore.exceptions import ClientError
from fakes import MemoryObjectStore, MemorySessionStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lambda_support import BUCKET, KEY_USERS, Moto

from exportsync_api.app import Dependencies, handle
from exportsync_api.keys import InvalidKeyPart, user_prefix
from exportsync_api.stores import PutOutcome
from exportsync_wire import ErrorCode, Status, routes

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "database": None,  # a fuzz run explores afresh; a failure prints its reproducer
}
settings.register_profile("exportsync-fuzz-short", max_examples=12, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("exportsync-fuzz-full", max_examples=900, **_COMMON)  # type: ignore[arg-type]
_LEVEL = os.environ.get("EXPORTSYNC_FUZZ", "short")
FUZZ = settings.get_profile(f"exportsync-fuzz-{_LEVEL}")
# Against moto every case costs real (mocked) AWS calls: a third of the examples.
MOTO = settings(FUZZ, max_examples=max(4, FUZZ.max_examples // 3))

_CASES = {"count": 0}


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    target = os.environ.get("EXPORTSYNC_FUZZ_REQUESTS_REPORT")
    if target:
        Path(target).write_text(f"{_CASES['count']}\n")


# -- strategies ---------------------------------------------------------------------------------

_names = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "walk.csv",
            "../../etc/passwd",
            "..",
            ".",
            "/",
            "a/../../b.csv",
            "C:\\Windows\\x.csv",
            "\u2215etc\u2215passwd",  # division slash
            "\uff0e\uff0e\uff0fx",  # fullwidth dots and solidus
            "new\nline.csv",
            "nul\x00.csv",
            "e\u0301.csv",
            "\u202eexe.csv",
            "x" * 300,
            "",
        ]
    ),
)
_hostile_users = st.one_of(
    st.sampled_from(["mallory", "", ".", "..", "a/b", "../alice", "x" * 129, "%41"]),
    st.text(max_size=20),
    st.integers(),
    st.none(),
)
# Mostly the caller's own name, so that most requests get past the owner check.
_users = st.one_of(st.just("alice"), st.just("alice"), _hostile_users)
_number_texts = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e9999999999999999999",
        "-1e9999999999999999999",
        "1e-9999999999999999999",
        "1" + "0" * 5000,
        "1e126",
        "1e-131",
        "0.1",
        "-0",
        "123456789012345678901234567890123456789",
        "1E+2",
    ]
)
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_good_timestamps = st.builds(
    "2026-05-{:02d}T10:{:02d}:{:02d}Z".format,
    st.integers(1, 28),
    st.integers(0, 59),
    st.integers(0, 59),
)
_timestamps = st.one_of(
    _good_timestamps,
    _good_timestamps,
    _good_timestamps,
    st.sampled_from(["2026-05-01T10:00:00.123+02:00", "", "yesterday", "2026-13-01T00:00:00Z"]),
    st.text(max_size=30),
    st.integers(),
)


@st.composite
def _session_text(draw: st.DrawFn) -> str:
    """One session object as JSON text, with a raw number Python's json would never write."""
    fields: dict[str, Any] = draw(st.dictionaries(st.text(max_size=8), _json_values, max_size=4))
    if draw(st.booleans()):
        fields["user_id"] = draw(_users)
    if draw(st.integers(0, 5)):
        fields["timestamp"] = draw(_timestamps)
    text = json.dumps(fields)
    if draw(st.integers(0, 3)) == 0:
        raw = draw(_number_texts)
        text = text[:-1] + ("," if fields else "") + f' "n": {raw}}}'
    depth = draw(st.sampled_from([0] * 12 + [31, 33, 200]))
    if depth:
        text = text[:-1] + (", " if text != "{}" else "") + '"deep": ' + "[" * depth
        text += "]" * depth + "}"
    return text


@st.composite
def _session_body(draw: st.DrawFn) -> bytes:
    sessions = draw(
        st.lists(_session_text(), min_size=draw(st.sampled_from([0] + [1] * 9)), max_size=5)
    )
    shape = draw(st.sampled_from(["one", "wrapped", "wrapped", "wrapped", "list", "garbage"]))
    if shape == "one" and sessions:
        text = sessions[0]
    elif shape == "list":
        text = "[" + ", ".join(sessions) + "]"
    elif shape == "garbage":
        text = draw(st.sampled_from(["", "null", "[]", "{", '{"sessions": 5}', '"x"', "1e99999"]))
    else:
        text = '{"sessions": [' + ", ".join(sessions) + "]}"
    encoded = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 5)) == 0:
        encoded = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe"])) + encoded
    return encoded


@st.composite
def _presign_entry(draw: st.DrawFn) -> Any:
    entry: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        entry["filename"] = draw(_names)
    if draw(st.integers(0, 9)):
        good = hashlib.sha256(draw(st.binary(max_size=8))).hexdigest()
        entry["sha256"] = draw(st.sampled_from([good] * 6 + ["A" * 64, "0" * 63, ""]))
    if draw(st.integers(0, 9)):
        entry["size"] = draw(
            st.one_of(
                st.integers(0, 10**9),
                st.integers(0, 10**9),
                st.integers(-1, 10),
                st.sampled_from(
                    [5 * 1024**3, 5 * 1024**3 + 1, 5 * 1024**4, 5 * 1024**4 + 1, 10**30]
                ),
                st.floats(),
                st.text(max_size=3),
            )
        )
    if draw(st.integers(0, 7)) == 0:
        entry["parts"] = draw(st.one_of(st.integers(-1, 20_000), st.none(), st.text(max_size=2)))
    if draw(st.integers(0, 7)) == 0:
        entry["upload_id"] = draw(st.one_of(st.text(max_size=10), st.integers()))
    return entry if draw(st.integers(0, 19)) else draw(_json_values)


@st.composite
def _presign_body(draw: st.DrawFn) -> bytes:
    files = draw(
        st.lists(_presign_entry(), min_size=draw(st.sampled_from([0] + [1] * 9)), max_size=4)
    )
    body: Any = {"files": files}
    if draw(st.booleans()):
        body["user_id"] = draw(_users)
    if not draw(st.integers(0, 19)):
        body = draw(_json_values)
    return json.dumps(body).encode()


_CSV = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"id,v\n1,2\n", b"", b"\xef\xbb\xbfa\n"]),
)


@st.composite
def _manifest(draw: st.DrawFn, files: list[bytes]) -> bytes:
    entries: list[Any] = []
    for data in files:
        entry: dict[str, Any] = {}
        gz = draw(st.integers(0, 3)) == 0
        if gz:
            entry["encoding"] = draw(st.sampled_from(["gzip", "GZIP", "br"]))
        if draw(st.integers(0, 3)):
            entry["sha256"] = draw(
                st.sampled_from([hashlib.sha256(data).hexdigest(), "0" * 64, "zz"])
            )
        if draw(st.integers(0, 3)):
            entry["size"] = draw(st.sampled_from([len(data), len(data) + 1, 0, -1, 10**12]))
        if draw(st.booleans()):
            entry["filename"] = draw(_names)
        entries.append(entry)
    if draw(st.booleans()):
        entries.append(draw(_json_values))
    return json.dumps(entries if draw(st.integers(0, 7)) else draw(_json_values)).encode()


def _disposition(name: str, filename: str | None) -> bytes:
    text = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        text += f'; filename="{filename}"'
    return text.encode("utf-8", "surrogatepass")


@st.composite
def _form(draw: st.DrawFn) -> tuple[bytes, str, set[str]]:
    """A multipart body, its content type, and the user_id values it names."""
    boundary = draw(st.sampled_from(["BOUNDARY"] * 6 + ["x" * 70, "a b", "--", "é"]))
    kinds = ["file"] * 3 + ["manifest", "session", "session", "presign", "user_id", "other", ""]
    chunks: list[bytes] = []
    files: list[bytes] = []
    users: set[str] = set()
    for kind in draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=7)):
        filename: str | None = None
        content_type = draw(st.sampled_from(["", "", "text/csv", "application/json", "x/y"]))
        if kind == "file":
            data = draw(_CSV)
            if draw(st.integers(0, 3)) == 0:
                data = gzip.compress(data) if draw(st.booleans()) else b"\x1f\x8b" + data
            files.append(data)
            filename = draw(st.one_of(_names, st.none()))
        elif kind == "manifest":
            data = draw(_manifest(files))
        elif kind == "session":
            data = draw(_session_body())
        elif kind == "presign":
            data = draw(_presign_body())
        elif kind == "user_id":
            user = draw(st.one_of(st.just("alice"), st.text(max_size=20)))
            users.add(user)
            data = user.encode("utf-8", "surrogatepass")
        else:
            data = draw(st.binary(max_size=50))
        head = b"--" + boundary.encode() + b"\r\n" + _disposition(kind, filename) + b"\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n".encode()
        chunks.append(head + b"\r\n" + data + b"\r\n")
    body = b"".join(chunks) + b"--" + boundary.encode() + b"--\r\n"
    if draw(st.integers(0, 19)) == 0:
        cut = draw(st.integers(0, len(body)))
        body = body[:cut]  # truncated mid-form
    content_type = f"multipart/form-data; boundary={boundary}"
    if draw(st.integers(0, 19)) == 0:
        content_type = draw(
            st.sampled_from(
                ["multipart/form-data", "text/plain", "", "multipart/mixed; boundary=x"]
            )
        )
    return body, content_type, users


@dataclass(frozen=True)
class _Request:
    event: dict[str, Any]
    identity: str | None  # the user the key stands for, when the gateway passes one
    named: frozenset[str]  # user_id values the request itself carries (form parts)

    def callers(self) -> set[str]:
        """Whose prefix a key may lie under: the key's user, else any user the request named."""
        return {self.identity} if self.identity is not None else set(self.named)


_KEY_IDS = st.sampled_from(["kid-alice", "kid-unknown", None])


@st.composite
def _request(draw: st.DrawFn, route: str | None = None) -> _Request:
    path = route or draw(st.sampled_from([*routes.ROUTES, *routes.ROUTES, "/", "/upload/x"]))
    named: set[str] = set()
    if path in (routes.UPLOAD, routes.BATCH) and draw(st.integers(0, 9)):
        body, content_type, named = draw(_form())
    elif path == routes.SESSION:
        body, content_type = draw(_session_body()), "application/json"
    elif path == routes.PRESIGN:
        body, content_type = draw(_presign_body()), "application/json"
    else:
        body = draw(st.binary(max_size=300))
        content_type = draw(st.sampled_from(["application/json", "multipart/form-data", ""]))
    method = draw(st.sampled_from(["POST"] * 20 + ["GET", "PUT", "OPTIONS"]))
    binary = draw(st.booleans())
    if body and not binary:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            binary = True  # a text event carries a str: non-UTF-8 bytes only travel as base64
    if draw(st.integers(0, 3)) == 0:
        event = http_event(path, body, method=method, content_type=content_type, binary=binary)
        identity = None
    else:
        key_id = draw(_KEY_IDS)
        event = rest_event(
            path, body, method=method, content_type=content_type, api_key_id=key_id, binary=binary
        )
        identity = None if key_id is None else KEY_USERS.get(key_id, key_id)
    _mangle_headers(draw, event)
    if path == routes.PRESIGN and identity is None:
        named |= _presign_user(body)
    return _Request(event, identity, frozenset(named))


def _mangle_headers(draw: st.DrawFn, event: dict[str, Any]) -> None:
    """Headers as a hostile client or proxy sends them: case, duplicates, junk, none at all."""
    headers = event.get("headers") or {}
    choice = draw(st.integers(0, 11))
    if choice == 0:
        event["headers"] = None
        event.pop("multiValueHeaders", None)
    elif choice == 1:
        value = headers.pop("Content-Type", headers.pop("content-type", ""))
        headers["CONTENT-TYPE"] = value
    elif choice == 2:
        headers[draw(st.text(min_size=1, max_size=10))] = draw(st.text(max_size=20))
        headers["Content-Encoding"] = draw(st.sampled_from(["gzip", "identity", "x"]))
    if draw(st.integers(0, 9)) == 0 and event.get("isBase64Encoded"):
        event["body"] = "!!not base64!!"


def _presign_user(body: bytes) -> set[str]:
    try:
        value = json.loads(body)
    except ValueError:
        return set()
    user = value.get("user_id") if isinstance(value, dict) else None
    return {user} if isinstance(user, str) else set()


# -- the properties -----------------------------------------------------------------------------

_KINDS = {"file", "session", "presign"}


def _prefixes(users: set[str]) -> set[str]:
    out = set()
    for user in users:
        try:
            out.add(user_prefix(user))
        except InvalidKeyPart:
            continue
    return out


def _check(request: _Request, response: Mapping[str, Any], *, faults: bool = False) -> list[str]:
    """Every property of one answer; the list of what is wrong (empty: all good)."""
    _CASES["count"] += 1
    status = response["statusCode"]
    assert status < 500, (status, response.get("body"))
    payload = response["body"]
    if response.get("isBase64Encoded"):
        payload = base64.b64decode(payload)
    body = json.loads(payload)
    assert isinstance(body, dict), body
    if "error" in body:
        assert body["error"]["code"] in set(ErrorCode), body
        assert body["error"]["code"] != ErrorCode.INTERNAL_ERROR, body
    path = request.event.get("path") or request.event.get("rawPath")
    prefixes = _prefixes(request.callers())
    keys: list[str] = []
    for result in body.get("results", []):
        assert result["status"] in set(Status), result
        if result["status"] in (Status.REJECTED, Status.RETRY):
            assert str(result.get("error", "")).strip(), result
        if result["status"] == Status.RETRY and not faults:
            assert not str(result["error"]).startswith("server_error"), result
        if path == routes.BATCH:
            assert result.get("kind") in _KINDS, result
        if result.get("key") is not None:
            keys.append(result["key"])
        delivered = result["status"] in (Status.STORED, Status.DUPLICATE)
        if delivered and request.identity is not None and result.get("user_id") is not None:
            assert result["user_id"] == request.identity, result
    for key in keys:
        assert any(key.startswith(p) for p in prefixes), (key, prefixes)
        assert key.count("/") == 3, key
    return keys


def _stored_keys(deps: Dependencies) -> list[str]:
    objects = deps.objects
    return [*getattr(objects, "objects", {}), *getattr(objects, "uploads", [])]


def _stored_sessions(deps: Dependencies) -> dict[tuple[str, str], object]:
    sessions = deps.sessions
    return dict(sessions.items) if isinstance(sessions, MemorySessionStore) else {}


def _check_stores(
    request: _Request, deps: Dependencies, keys: set[str], sessions: Mapping[Any, object]
) -> None:
    """What this request added to the stores: keys under the caller's prefix, its own sessions."""
    prefixes = _prefixes(request.callers())
    for key in set(_stored_keys(deps)) - keys:
        assert any(key.startswith(p) for p in prefixes), (key, prefixes)
    if request.identity is not None:
        written = {
            user
            for (user, ts), value in _stored_sessions(deps).items()
            if sessions.get((user, ts)) is not value
        }
        assert written <= {request.identity}, written


def _memory(settings_of: Dependencies) -> Dependencies:
    return Dependencies(
        settings=settings_of.settings, objects=MemoryObjectStore(), sessions=MemorySessionStore()
    )


def _run(request: _Request, deps: Dependencies, *, faults: bool = False) -> None:
    keys, sessions = set(_stored_keys(deps)), _stored_sessions(deps)
    response = handle(request.event, None, deps)
    _check(request, response, faults=faults)
    _check_stores(request, deps, keys, sessions)


@FUZZ
@given(req=_request())
def test_any_request_to_any_path(memory_deps: Dependencies, req: _Request) -> None:
    _run(req, _memory(memory_deps))


@FUZZ
@given(req=_request(routes.UPLOAD))
def test_upload_forms(memory_deps: Dependencies, req: _Request) -> None:
    _run(req, _memory(memory_deps))


@FUZZ
@given(req=_request(routes.BATCH))
def test_batch_forms(memory_deps: Dependencies, req: _Request) -> None:
    _run(req, _memory(memory_deps))


@FUZZ
@given(req=_request(routes.SESSION))
def test_session_bodies(memory_deps: Dependencies, req: _Request) -> None:
    _run(req, _memory(memory_deps))


@FUZZ
@given(req=_request(routes.PRESIGN))
def test_presign_bodies(memory_deps: Dependencies, req: _Request) -> None:
    _run(req, _memory(memory_deps))


@FUZZ
@given(reqs=st.lists(_request(), min_size=2, max_size=4))
def test_a_sequence_of_requests_shares_the_stores(
    memory_deps: Dependencies, reqs: list[_Request]
) -> None:
    """Replays and overlaps: later requests meet what earlier ones stored."""
    deps = _memory(memory_deps)
    for req in reqs:
        _run(req, deps)


class _FlakyObjects(MemoryObjectStore):
    """Raises on a seeded share of calls, as S3 does under trouble."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self._rng = rng

    def _maybe_fail(self) -> None:
        if self._rng.random() < 0.3:
            raise _fault(self._rng)

    def put_if_absent(self, key: str, data: bytes, sha256_hex: str) -> PutOutcome:
        self._maybe_fail()
        return super().put_if_absent(key, data, sha256_hex)

    def stored_etag(self, key: str) -> str | None:
        self._maybe_fail()  # the listing behind every "is it there?"
        return super().stored_etag(key)

    def presign_put(self, key: str, sha256_hex: str, size: int, expires_in: int) -> str:
        self._maybe_fail()
        return super().presign_put(key, sha256_hex, size, expires_in)


class _FlakySessions(MemorySessionStore):
    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self._rng = rng

    def put_unless_same(self, item: Mapping[str, Any], content_hash: str) -> PutOutcome:
        if self._rng.random() < 0.3:
            raise _fault(self._rng)
        return super().put_unless_same(item, content_hash)


def _fault(rng: random.Random) -> Exception:
    """An AWS error, a timeout or a plain bug: each must stay the entry's own answer."""
    code = rng.choice(["ThrottlingException", "InternalServerError", "ValidationException"])
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {}}
    return rng.choice(
        [ClientError(response, "PutItem"), TimeoutError("store timed out"), RuntimeError("boom")]
    )


@FUZZ
@given(req=_request(), seed=st.integers(0, 2**32))
def test_store_faults_are_entry_answers_not_5xx(
    memory_deps: Dependencies, req: _Request, seed: int
) -> None:
    rng = random.Random(seed)  # noqa: S311 -- reproducible faults
    deps = Dependencies(
        settings=memory_deps.settings, objects=_FlakyObjects(rng), sessions=_FlakySessions(rng)
    )
    _run(req, deps, faults=True)


@MOTO
@given(req=_request())
def test_any_request_against_moto(moto_deps: Moto, req: _Request) -> None:
    before = _bucket_keys(moto_deps)
    _run(req, moto_deps.deps)
    prefixes = _prefixes(req.callers())
    for key in _bucket_keys(moto_deps) - before:
        assert any(key.startswith(p) for p in prefixes), (key, prefixes)


def _bucket_keys(moto: Moto) -> set[str]:
    """Every object and every unfinished multipart upload in the (mocked) bucket."""
    listing = moto.s3.list_objects_v2(Bucket=BUCKET)
    uploads = moto.s3.list_multipart_uploads(Bucket=BUCKET)
    return {o["Key"] for o in listing.get("Contents", [])} | {
        u["Key"] for u in uploads.get("Uploads", [])
    }
