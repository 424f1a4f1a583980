"""gzip file parts: stored inflated, checked against the declared sha256 and size, and a part
that inflates past its declared size (a zip bomb) refused alone without inflating further."""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import tracemalloc
from typing import Any

import pytest
from apigw_events import body_of, rest_event
from lambda_support import BUCKET, Moto, json_part, multipart_body

from exportsync_api.app import handle
from exportsync_api.budget import Budget
from exportsync_api.errors import ApiError
from exportsync_api.form import FilePart
from exportsync_api.inflate import InflateError, inflate_gzip
from exportsync_api.uploads import ManifestEntry, parse_manifest, plan_upload
from exportsync_wire import limits

_MIB = 1024 * 1024


@functools.cache
def _zeros_gz() -> bytes:
    """10 MiB of zeros, gzipped to about 10 KB."""
    return gzip.compress(b"\0" * (10 * _MIB), compresslevel=9)


def _entry(name: str, raw: bytes, **extra: Any) -> dict[str, Any]:
    return {"filename": name, "sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw), **extra}


def test_inflate_round_trips_one_or_several_members() -> None:
    data = b"date,steps\n" + b"2026-06-01,1234\n" * 5000
    assert inflate_gzip(gzip.compress(data), len(data)) == data
    two = gzip.compress(data) + gzip.compress(b"tail\n")
    assert inflate_gzip(two, len(data) + 5) == data + b"tail\n"
    assert inflate_gzip(gzip.compress(b""), 0) == b""
    # Many members (each one of the input's steps holds thousands): read once, in steps.
    assert inflate_gzip(gzip.compress(b"") * 20_000, 0) == b""
    assert inflate_gzip(gzip.compress(b"ab") * 20_000, 40_000) == b"ab" * 20_000


# mtime=0: the blobs are the test ids, and pytest-xdist's workers must collect the same ones.
@pytest.mark.parametrize(
    ("blob", "limit", "message"),
    [
        (gzip.compress(b"x" * 1000, mtime=0), 999, "inflates beyond"),
        (gzip.compress(b"x" * 1000, mtime=0)[:-4], 1000, "truncated"),
        (b"not gzip at all", 100, "not a valid gzip stream"),
        (gzip.compress(b"x", mtime=0) + b"junk", 100, "not a valid gzip stream"),
        (b"", 10, "truncated"),
    ],
)
def test_inflate_refuses_bad_streams(blob: bytes, limit: int, message: str) -> None:
    with pytest.raises(InflateError, match=message):
        inflate_gzip(blob, limit)


def test_a_gigabyte_bomb_stops_at_its_cap_in_flat_memory() -> None:
    bomb = _zeros_gz() * 100  # 1 GiB of zeros in about 1 MB
    tracemalloc.start()
    try:
        with pytest.raises(InflateError, match="inflates beyond its declared size of 1048576"):
            inflate_gzip(bomb, _MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * _MIB


def test_gzip_part_needs_a_size_and_a_known_encoding() -> None:
    part = FilePart("a.csv", gzip.compress(b"a,b\n"))
    missing = plan_upload(part, ManifestEntry(encoding="gzip"), "alice")
    assert missing.error is not None
    assert missing.error.startswith("missing_size:")
    brotli = plan_upload(part, ManifestEntry(size=4, encoding="br"), "alice")
    assert brotli.error is not None
    assert brotli.error.startswith("unsupported_encoding:")
    huge = plan_upload(part, ManifestEntry(size=limits.INFLATED_BYTES + 1, encoding="gzip"), "a")
    assert huge.error is not None
    assert huge.error.startswith("too_large:")


def test_a_request_inflates_within_its_budget_and_the_rest_is_retried() -> None:
    data = b"x" * 1000
    budget = Budget(1500)
    entry = ManifestEntry(size=len(data), encoding="gzip")
    first = plan_upload(FilePart("a.csv", gzip.compress(data)), entry, "alice", budget)
    second = plan_upload(FilePart("b.csv", gzip.compress(data)), entry, "alice", budget)
    assert (first.error, first.data) == (None, data)
    assert second.retry
    assert second.error is not None
    assert second.error.startswith("request_full:")


def test_batch_stores_gzip_inflated_and_refuses_the_bomb_alone(moto_deps: Moto) -> None:
    plain = b"plain,csv\n1,2\n"
    packed = b"date,steps\n" + b"2026-06-01,4321\n" * 2000
    manifest = [
        _entry("plain.csv", plain),
        _entry("packed.csv", packed, encoding="gzip"),
        # The bomb declares 1 KB; it inflates to 10 MiB.
        {"filename": "bomb.csv", "sha256": "0" * 64, "size": 1024, "encoding": "gzip"},
        _entry("lying.csv", b"other bytes", encoding="gzip"),
        # 1 GiB of zeros in about 1 MB, declared as 1 MiB.
        {"filename": "huge.csv", "sha256": "1" * 64, "size": _MIB, "encoding": "gzip"},
    ]
    body, content_type = multipart_body(
        [
            ("file", ("plain.csv", plain, "text/csv")),
            ("file", ("packed.csv", gzip.compress(packed), "application/gzip")),
            ("file", ("bomb.csv", _zeros_gz(), "application/gzip")),
            ("file", ("lying.csv", gzip.compress(b"other bytez"), "application/gzip")),
            ("file", ("huge.csv", _zeros_gz() * 100, "application/gzip")),
            json_part("manifest", manifest),
        ]
    )
    response = handle_batch(moto_deps, body, content_type)
    assert response["statusCode"] == 200
    results = body_of(response)["results"]
    assert [r["status"] for r in results] == [
        "stored",
        "stored",
        "rejected",
        "rejected",
        "rejected",
    ]
    assert results[1]["size"] == len(packed)
    assert results[1]["sha256"] == hashlib.sha256(packed).hexdigest()
    assert results[2]["error"] == (
        "inflate_failed: inflates beyond its declared size of 1024 bytes"
    )
    assert results[2]["key"] is None
    assert results[3]["error"].startswith("sha256_mismatch:")
    assert results[4]["error"] == (
        "inflate_failed: inflates beyond its declared size of 1048576 bytes"
    )
    stored = moto_deps.s3.get_object(Bucket=BUCKET, Key=results[1]["key"])["Body"].read()
    assert stored == packed
    listed = moto_deps.s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert len(listed) == 2


def test_upload_route_takes_gzip_parts_too(moto_deps: Moto) -> None:
    data = b"a,b\n" * 1000
    body, content_type = multipart_body(
        [
            ("file", ("a.csv", gzip.compress(data), "application/gzip")),
            json_part("manifest", [_entry("a.csv", data, encoding="gzip")]),
        ]
    )
    event = rest_event("/upload", body, content_type=content_type)
    [result] = body_of(handle(event, None, moto_deps.deps))["results"]
    assert (result["status"], result["size"]) == ("stored", len(data))


def handle_batch(moto: Moto, body: bytes, content_type: str) -> dict[str, Any]:
    return handle(rest_event("/batch", body, content_type=content_type), None, moto.deps)


def test_manifest_encoding_must_be_a_string() -> None:
    with pytest.raises(ApiError):
        parse_manifest(json.dumps([{"encoding": 1}]), 1)
