"""Fuzzing every route with hostile input and failing stores: never a 5xx, never an object key
outside the caller's prefix. `make test` runs a short version; `make fuzz` runs at least 5,000
cases and prints the tally last (EXPORTSYNC_FUZZ_EXAMPLES per test, EXPORTSYNC_FUZZ_REPORT)."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from apigw_events import http_event, rest_event
from botocore.exceptions import ClientError, EndpointConnectionError
from fakes import MemoryObjectStore, MemorySessionStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lambda_support import multipart_body

from exportsync_api.app import Dependencies, handle
from exportsync_api.stores import PutOutcome

_EXAMPLES = int(os.environ.get("EXPORTSYNC_FUZZ_EXAMPLES", "60"))
_FUZZ = settings(
    max_examples=_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_PREFIX = "uploads/alice/"  # kid-alice, the REST events' key, stands for alice
_TALLY: Counter[str] = Counter()  # cases per route
_BROKEN: Counter[str] = Counter()  # "5xx" answers, "outside" keys


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    """Write the tally where `make fuzz` reads it (it prints it last)."""
    yield
    path = os.environ.get("EXPORTSYNC_FUZZ_REPORT")
    if path:
        routes = ", ".join(f"{route} {n}" for route, n in sorted(_TALLY.items()))
        Path(path).write_text(
            f"lambda fuzz: {sum(_TALLY.values())} cases ({routes}), "
            f"{_BROKEN['5xx']} answered 5xx, {_BROKEN['outside']} keys outside the prefix\n"
        )


# --- hostile pieces --------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text put in verbatim (numbers no float can hold, NaN, bad escapes)."""

    text: str


_RAW_NUMBERS = st.sampled_from(
    [
        "1e9999999999999999999",
        "-1e9999999999999999999",
        "1e-9999999999999999999",
        "1" + "0" * 5000,
        "NaN",
        "-Infinity",
        "1e126",
        "1e-131",
        "0.1",
        "-0",
        "12345678901234567890123456789012345678901",
        '"\\ud800"',
        '"\\u0000"',
    ]
).map(Raw)
_NAMES = st.sampled_from(
    [
        "report.csv",
        "../../etc/passwd",
        "..",
        ".",
        "",
        "a/b\\c.csv",
        "\x00.csv",
        "\u202etxt.csv",
        "\uff46\uff4f\uff4f\uff0f..\uff0fbar.csv"  # fullwidth "foo/../bar.csv",
        "~$report.csv",
        "x" * 300 + ".csv",
        "名前.csv",
    ]
) | st.text(max_size=40)
_USERS = st.sampled_from(["alice", "bob", "", "../alice", None, 7, "a" * 3000])
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    _RAW_NUMBERS,
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


def _json(value: object) -> str:
    """JSON text with Raw leaves spliced in."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, list):
        return "[" + ",".join(_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _deep(depth: int) -> Raw:
    return Raw("[" * depth + "1" + "]" * depth)


_SESSIONS = st.fixed_dictionaries(
    {
        "user_id": _USERS,
        "timestamp": st.sampled_from(["2026-05-01T10:00:00Z", "not a time", "", 5]),
    },
    optional={
        "v": _VALUES,
        "deep": st.integers(1, 2000).map(_deep),
        "blob": st.sampled_from(["x" * 1000, "y" * 420_000]),
        "exportsync_content_sha256": st.just("mine"),
    },
)
_PRESIGN_ENTRIES = st.fixed_dictionaries(
    {},
    optional={
        "filename": _NAMES | st.integers(),
        "sha256": st.sampled_from(["ab" * 32, "AB" * 32, "xyz", "", None]),
        "size": st.sampled_from(
            [0, 1, 5 * 1024**3, 5 * 1024**3 + 1, 5 * 1024**4, 5 * 1024**4 + 1, -1]
        )
        | st.integers(),
        "parts": st.integers(-2, 20_000) | st.sampled_from([True, "3", 1.5]),
        "upload_id": st.sampled_from(["u-1", "", "../x", 9]),
        "user_id": _USERS,
    },
)
_BOMB = gzip.compress(b"\0" * (1024 * 1024))
_FILE_DATA = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(gzip.compress),
    st.just(_BOMB),
    st.binary(max_size=40).map(lambda b: gzip.compress(b)[:-3]),
)
_MANIFEST_ENTRIES = st.fixed_dictionaries(
    {},
    optional={
        "filename": _NAMES | st.integers(),
        "sha256": st.sampled_from(["ab" * 32, "nothex", None]),
        "size": st.sampled_from([0, 1, 1024, 300 * 1024 * 1024, -1, None]) | st.integers(0, 300),
        "encoding": st.sampled_from(["gzip", "identity", "br", None, 3]),
    },
)


class FlakyObjects(MemoryObjectStore):
    """Each call may raise one of the faults the case drew, in turn."""

    def __init__(self, faults: list[Exception | None]) -> None:
        super().__init__()
        self.faults = iter(faults)

    def _maybe_fail(self) -> None:
        fault = next(self.faults, None)
        if fault is not None:
            raise fault

    def put_if_absent(self, key: str, data: bytes, sha256_hex: str) -> PutOutcome:
        self._maybe_fail()
        return super().put_if_absent(key, data, sha256_hex)

    def stored_etag(self, key: str) -> str | None:
        self._maybe_fail()  # the listing behind every "is it there?"
        return super().stored_etag(key)

    def start_multipart(self, key: str) -> str:
        self._maybe_fail()
        return super().start_multipart(key)


class FlakySessions(MemorySessionStore):
    def __init__(self, faults: list[Exception | None]) -> None:
        super().__init__()
        self.faults = iter(faults)

    def put_unless_same(self, item: Mapping[str, Any], content_hash: str) -> PutOutcome:
        fault = next(self.faults, None)
        if fault is not None:
            raise fault
        return super().put_unless_same(item, content_hash)


def _client_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "Op")


_FAULTS = st.lists(
    st.sampled_from(
        [
            None,
            None,
            _client_error("ValidationException", 400),
            _client_error("ProvisionedThroughputExceededException", 400),
            _client_error("SlowDown", 503),
            _client_error("AccessDenied", 403),
            EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
            RuntimeError("bug"),
        ]
    ),
    max_size=8,
)


def _deps(memory_deps: Dependencies, faults: list[Exception | None]) -> Dependencies:
    return Dependencies(memory_deps.settings, FlakyObjects(faults), FlakySessions(list(faults)))


def _check(route: str, response: dict[str, Any], deps: Dependencies) -> None:
    _TALLY[route] += 1
    objects = deps.objects
    assert isinstance(objects, FlakyObjects)
    keys = [*objects.objects, *objects.uploads]
    if response["statusCode"] == 200:
        keys += [r["key"] for r in json.loads(response["body"])["results"] if r.get("key")]
    outside = [key for key in keys if not key.startswith(_PREFIX)]
    _BROKEN["5xx"] += response["statusCode"] >= 500
    _BROKEN["outside"] += len(outside)
    assert 200 <= response["statusCode"] < 500, response["body"][:300]
    assert not outside


# --- the routes ------------------------------------------------------------------------------


@_FUZZ
@given(sessions=st.lists(_SESSIONS, max_size=4), single=st.booleans(), faults=_FAULTS)
def test_fuzz_session(
    memory_deps: Dependencies, sessions: list[dict[str, Any]], single: bool, faults: list[Any]
) -> None:
    deps = _deps(memory_deps, faults)
    body = _json(sessions[0]) if single and sessions else _json({"sessions": sessions})
    _check("/session", handle(rest_event("/session", body), None, deps), deps)


@_FUZZ
@given(files=st.lists(_PRESIGN_ENTRIES, max_size=4), user=_USERS, faults=_FAULTS)
def test_fuzz_presign(
    memory_deps: Dependencies, files: list[dict[str, Any]], user: object, faults: list[Any]
) -> None:
    deps = _deps(memory_deps, faults)
    body = json.dumps({"files": files, "user_id": user})
    _check("/presign", handle(rest_event("/presign", body), None, deps), deps)
    # Without a key identity the body's user_id names the owner: still one prefix per user.
    response = handle(http_event("/presign", body), None, deps)
    assert 200 <= response["statusCode"] < 500


def _file_form(
    files: list[tuple[str, bytes]], manifest: list[dict[str, Any]] | None
) -> list[tuple[str, tuple[str | None, bytes, str]]]:
    form: list[tuple[str, tuple[str | None, bytes, str]]] = [
        ("file", (name, data, "application/octet-stream")) for name, data in files
    ]
    if manifest is not None:
        form.append(("manifest", (None, json.dumps(manifest).encode(), "application/json")))
    return form


@_FUZZ
@given(
    files=st.lists(st.tuples(_NAMES, _FILE_DATA), max_size=4),
    manifest=st.none() | st.lists(_MANIFEST_ENTRIES, max_size=4),
    faults=_FAULTS,
)
def test_fuzz_upload(
    memory_deps: Dependencies,
    files: list[tuple[str, bytes]],
    manifest: list[dict[str, Any]] | None,
    faults: list[Any],
) -> None:
    deps = _deps(memory_deps, faults)
    body, content_type = multipart_body(_file_form(files, manifest))
    _check(
        "/upload", handle(rest_event("/upload", body, content_type=content_type), None, deps), deps
    )


_BATCH_PARTS = st.lists(
    st.one_of(
        st.tuples(st.just("file"), _NAMES, _FILE_DATA),
        st.tuples(
            st.just("session"),
            st.none(),
            (st.lists(_SESSIONS, max_size=3) | _SESSIONS | _VALUES).map(
                lambda v: _json(v).encode()
            ),
        ),
        st.tuples(
            st.just("presign"),
            st.none(),
            (st.lists(_PRESIGN_ENTRIES, max_size=3).map(lambda f: {"files": f}) | _VALUES).map(
                lambda v: _json(v).encode()
            ),
        ),
        st.tuples(st.sampled_from(["user_id", "other", ""]), st.none(), st.binary(max_size=20)),
    ),
    max_size=6,
)


@_FUZZ
@given(
    parts=_BATCH_PARTS,
    manifest=st.none() | st.lists(_MANIFEST_ENTRIES, max_size=4),
    faults=_FAULTS,
)
def test_fuzz_batch(
    memory_deps: Dependencies,
    parts: list[tuple[str, str | None, bytes]],
    manifest: list[dict[str, Any]] | None,
    faults: list[Any],
) -> None:
    deps = _deps(memory_deps, faults)
    form: list[tuple[str, tuple[str | None, bytes, str]]] = [
        (name, (filename, data, "application/json")) for name, filename, data in parts
    ]
    if manifest is not None:
        form.append(("manifest", (None, json.dumps(manifest).encode(), "application/json")))
    body, content_type = multipart_body(form)
    _check(
        "/batch", handle(rest_event("/batch", body, content_type=content_type), None, deps), deps
    )


@_FUZZ
@given(
    route=st.sampled_from(["/upload", "/session", "/presign", "/batch"]),
    body=st.binary(max_size=400),
    content_type=st.sampled_from(
        [
            "multipart/form-data; boundary=B",
            "multipart/form-data",
            "application/json",
            "text/plain",
            "",
        ]
    ),
    binary=st.booleans(),
)
def test_fuzz_raw_bodies(
    memory_deps: Dependencies, route: str, body: bytes, content_type: str, binary: bool
) -> None:
    deps = _deps(memory_deps, [])
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        binary = True  # a text body that is not UTF-8 reaches the function base64-encoded
    event = rest_event(route, body, content_type=content_type, binary=binary)
    _check(f"{route} (raw)", handle(event, None, deps), deps)
