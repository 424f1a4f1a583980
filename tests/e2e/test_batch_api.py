"""POST /batch and the 1,000-entry routes through the devstack: real HTTP on loopback to the
gateway emulator, the real handler, moto's server holding what landed."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from exportsync_wire.parts import checksum_b64, plan_parts
from support.devstack import DevstackInfo, dynamo_items, s3_objects, start_devstack, usage


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevstackInfo]:
    """One devstack for the module, without rate or quota (this is about the API, not the plan)."""
    path: Path = tmp_path_factory.mktemp("devstack")
    with start_devstack(path, "--rate", "0", "--quota", "0") as info:
        yield info


def _session(info: DevstackInfo, n: int, **fields: object) -> dict[str, object]:
    """Session ``n`` (0 to 86399) of one day, a second apart."""
    stamp = f"2026-06-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
    return {"user_id": info.user_id, "timestamp": stamp, **fields}


def _post(info: DevstackInfo, route: str, **kwargs: Any) -> requests.Response:
    headers = {"x-api-key": info.api_key}
    return requests.post(f"{info.api_url}{route}", headers=headers, timeout=60, **kwargs)


def _json(name: str, value: object) -> tuple[str, tuple[None, bytes, str]]:
    return (name, (None, json.dumps(value).encode("utf-8"), "application/json"))


def test_a_thousand_sessions_in_one_request_are_stored(stack: DevstackInfo) -> None:
    sessions = [_session(stack, n, seq=n) for n in range(1000)]
    before = usage(stack)["accepted"]
    response = _post(stack, "/session", json={"sessions": sessions})
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == ["stored"] * 1000
    assert usage(stack)["accepted"] == before + 1
    stored = {item["timestamp"] for item in dynamo_items(stack)}
    assert {s["timestamp"] for s in sessions} <= stored


def test_a_thousand_and_one_entries_are_a_4xx(stack: DevstackInfo) -> None:
    sessions = [_session(stack, 3000 + n) for n in range(1001)]
    response = _post(stack, "/session", json={"sessions": sessions})
    assert 400 <= response.status_code < 500
    batch = _post(stack, "/batch", files=[_json("session", sessions)])
    assert 400 <= batch.status_code < 500
    assert batch.json()["error"]["code"] == "too_many_entries"


def test_batch_of_files_and_sessions_lands_everything(stack: DevstackInfo) -> None:
    data = b"date,steps\n2026-06-02,9000\n"
    sha = hashlib.sha256(data).hexdigest()
    parts = [
        ("file", ("steps.csv", data, "text/csv")),
        _json("session", [_session(stack, 2000, v=1.5), _session(stack, 2001, v=float("nan"))]),
        _json("manifest", [{"filename": "steps.csv", "sha256": sha, "size": len(data)}]),
    ]
    response = _post(stack, "/batch", files=parts)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["kind"], r["status"]) for r in results] == [
        ("file", "stored"),
        ("session", "stored"),
        ("session", "rejected"),
    ]
    assert s3_objects(stack)[results[0]["key"]] == data
    assert usage(stack)["by_route"]["POST /batch"]["accepted"] >= 1


def _digests(data: bytes, parts: int) -> list[str]:
    plan = plan_parts(len(data), parts)
    return [_sha(data[n * plan.part_size : (n + 1) * plan.part_size]) for n in range(plan.count)]


def _complete_xml(etags: list[str], digests: list[str]) -> bytes:
    parts = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag>"
        f"<ChecksumSHA256>{checksum_b64(digest)}</ChecksumSHA256></Part>"
        for n, (etag, digest) in enumerate(zip(etags, digests, strict=True), 1)
    )
    return f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()


def _upload_in_parts(answer: dict[str, Any], data: bytes) -> None:
    """PUT each part to its presigned URL, then POST the completion with the parts' ETags and
    checksums, and the headers its URL signs."""
    etags, offset = [], 0
    for part in answer["parts"]:
        length = int(part["headers"]["Content-Length"])
        put = requests.put(
            part["url"], data=data[offset : offset + length], headers=part["headers"], timeout=60
        )
        assert put.status_code == 200
        etags.append(put.headers["ETag"])
        offset += length
    assert offset == len(data)
    body = _complete_xml(etags, _digests(data, len(answer["parts"])))
    complete = answer["complete"]
    done = requests.post(complete["url"], data=body, headers=complete["headers"], timeout=60)
    assert done.status_code == 200


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_one_batch_carries_every_kind_and_each_bad_entry_fails_alone(stack: DevstackInfo) -> None:
    plain = b"date,steps\n2026-06-03,7000\n"
    packed = b"date,steps\n" + b"2026-06-03,1234\n" * 20_000
    bomb = gzip.compress(b"\0" * (10 * 1024 * 1024), compresslevel=9)  # 10 MiB in ~10 KB
    small = b"small presigned\n"
    huge = bytes(range(256)) * (11 * 4096) + b"tail"  # 11 MiB: two parts
    manifest = [
        {"filename": "plain.csv", "sha256": _sha(plain), "size": len(plain)},
        {"filename": "packed.csv", "sha256": _sha(packed), "size": len(packed), "encoding": "gzip"},
        {"filename": "bomb.csv", "sha256": "0" * 64, "size": 1024, "encoding": "gzip"},
    ]
    presign = {
        "files": [
            {"filename": "small.csv", "sha256": _sha(small), "size": len(small)},
            {
                "filename": "huge.csv",
                "sha256": _sha(huge),
                "size": len(huge),
                "parts": 2,
                "part_sha256": _digests(huge, 2),
            },
        ]
    }
    sessions = [_session(stack, 5000, v=0.1), _session(stack, 5001, v=float("nan"))]
    parts = [
        _json("presign", presign),
        ("file", ("plain.csv", plain, "text/csv")),
        _json("session", sessions),
        ("file", ("packed.csv", gzip.compress(packed), "application/gzip")),
        ("file", ("bomb.csv", bomb, "application/gzip")),
        _json("manifest", manifest),
    ]
    before = usage(stack)["accepted"]
    response = _post(stack, "/batch", files=parts)
    assert response.status_code == 200
    assert usage(stack)["accepted"] == before + 1
    results = response.json()["results"]
    assert [(r["kind"], r["status"]) for r in results] == [
        ("presign", "upload"),
        ("presign", "multipart"),
        ("file", "stored"),
        ("session", "stored"),
        ("session", "rejected"),
        ("file", "stored"),
        ("file", "rejected"),
    ]
    assert results[4]["error"].startswith("not_finite:")
    assert results[6]["error"].startswith("inflate_failed:")

    put = requests.put(results[0]["url"], data=small, headers=results[0]["headers"], timeout=60)
    assert put.status_code == 200
    _upload_in_parts(results[1], huge)

    objects = s3_objects(stack)
    assert objects[results[0]["key"]] == small
    assert objects[results[1]["key"]] == huge
    assert objects[results[2]["key"]] == plain
    assert objects[results[5]["key"]] == packed  # stored inflated
    assert not any("bomb" in key for key in objects)
    stamps = {item["timestamp"] for item in dynamo_items(stack)}
    assert sessions[0]["timestamp"] in stamps
    assert sessions[1]["timestamp"] not in stamps
