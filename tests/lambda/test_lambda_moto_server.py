"""Against moto's real server over HTTP on 127.0.0.1, through ``lambda_handler`` as the devstack
calls it (environment set, context None): presign, then a real PUT of the bytes.

The presigning tests put the devstack's strict S3 front before moto (``AWS_ENDPOINT_URL_S3``), as
the devstack does: it checks presigned requests as real S3 does; moto alone accepts any signature
and any checksum.
"""

from __future__ import annotations

import hashlib
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from apigw_events import body_of, rest_event
from lambda_support import BUCKET

from exportsync_api import app
from exportsync_api.verify import verify_completed
from exportsync_devstack.s3_front import serve_s3_front
from exportsync_wire.parts import checksum_b64, plan_parts


@pytest.fixture(scope="module")
def s3_front(moto_endpoint: str) -> Iterator[str]:
    """The strict front before moto's S3, trusting the dummy credentials of ``aws_env``."""
    front = serve_s3_front(moto_endpoint, {"testing": "testing"}, time.time)
    try:
        yield front.url
    finally:
        front.stop()


@pytest.fixture
def strict(live: Any, s3_front: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``live`` with the handler's S3 client (so its presigned URLs) behind the strict front."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_front)
    app.default_dependencies.cache_clear()
    yield live
    app.default_dependencies.cache_clear()


def _presign(data: bytes, name: str = "big.csv") -> dict[str, object]:
    sha = hashlib.sha256(data).hexdigest()
    request = {"files": [{"filename": name, "sha256": sha, "size": len(data)}]}
    response = app.lambda_handler(rest_event("/presign", json.dumps(request)), None)
    assert response["statusCode"] == 200
    result: dict[str, object] = body_of(response)["results"][0]
    return result


def test_presigned_put_lands_the_bytes_and_second_presign_is_duplicate(strict: Any) -> None:
    data = b"date,steps\n" + b"2026-02-10,8123\n" * 1000
    first = _presign(data)
    assert first["status"] == "upload"
    url, headers = str(first["url"]), first["headers"]
    assert isinstance(headers, dict)
    # The checksum and the length are signed: S3 refuses the PUT without exactly these.
    signed = parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"x-amz-checksum-sha256", "content-length"} <= set(signed)
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["120"]

    put = requests.put(url, data=data, headers=headers, timeout=10)
    assert put.status_code == 200
    stored = strict.get_object(Bucket=BUCKET, Key=first["key"])["Body"].read()
    assert stored == data

    second = _presign(data)
    assert second == {"filename": "big.csv", "key": first["key"], "status": "duplicate"}


def test_upload_through_lambda_handler_with_real_http(live: object) -> None:
    data = b"x,y\n1,2\n"
    prepared = requests.Request(
        "POST", "http://127.0.0.1/upload", files={"file": ("small.csv", data)}
    ).prepare()
    assert isinstance(prepared.body, bytes)
    event = rest_event("/upload", prepared.body, content_type=prepared.headers["Content-Type"])
    results = body_of(app.lambda_handler(event, None))["results"]
    assert results[0]["status"] == "stored"
    assert body_of(app.lambda_handler(event, None))["results"][0]["status"] == "duplicate"


@pytest.mark.parametrize(
    "corrupted",
    [b"the REAL bytes\n", b"\nsetyb laer eht", b"the real bytes"],
    ids=["torn", "swapped", "truncated"],
)
def test_corrupted_body_is_rejected_by_s3(strict: Any, corrupted: bytes) -> None:
    data = b"the real bytes\n"
    first = _presign(data)
    headers = first["headers"]
    assert isinstance(headers, dict)
    put = requests.put(str(first["url"]), data=corrupted, headers=headers, timeout=10)
    # Same length: the checksum refuses it (BadDigest); shorter: the signed length does.
    expected = (400, "BadDigest") if len(corrupted) == len(data) else (403, "SignatureDoesNotMatch")
    assert (put.status_code, _code(put.content)) == expected
    assert strict.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def _code(xml: bytes) -> str | None:
    return ET.fromstring(xml).findtext("Code")  # noqa: S314 -- the devstack front's own XML


def complete_xml(etags: list[str], digests: list[str]) -> bytes:
    """The CompleteMultipartUpload body: each part's number, the ETag its PUT answered and its
    checksum (the upload was created with SHA256: S3 wants every part's)."""
    parts = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag>"
        f"<ChecksumSHA256>{checksum_b64(digest)}</ChecksumSHA256></Part>"
        for n, (etag, digest) in enumerate(zip(etags, digests, strict=True), 1)
    )
    return f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()


def test_multipart_upload_completes_through_its_presigned_urls(strict: Any) -> None:
    data = bytes(range(256)) * (12 * 1024 * 4) + b"the tail"  # 12 MiB and a bit: two parts
    sha = hashlib.sha256(data).hexdigest()
    plan = plan_parts(len(data), 2)
    digests = [
        hashlib.sha256(data[n * plan.part_size : (n + 1) * plan.part_size]).hexdigest()
        for n in range(plan.count)
    ]
    entry = {"filename": "huge.csv", "sha256": sha, "size": len(data), "parts": 2}
    request = {"files": [{**entry, "part_sha256": digests}]}
    response = app.lambda_handler(rest_event("/presign", json.dumps(request)), None)
    [answer] = body_of(response)["results"]
    assert answer["status"] == "multipart"
    etags = []
    offset = 0
    for part in answer["parts"]:
        length = int(part["headers"]["Content-Length"])
        chunk = data[offset : offset + length]
        offset += length
        # Length and checksum are signed: the strict front, like S3, refuses other bytes.
        signed = parse_qs(urlsplit(part["url"]).query)["X-Amz-SignedHeaders"][0].split(";")
        assert {"content-length", "x-amz-checksum-sha256"} <= set(signed)
        put = requests.put(part["url"], data=chunk, headers=part["headers"], timeout=30)
        assert put.status_code == 200
        etags.append(put.headers["ETag"])
    assert offset == len(data)
    complete = answer["complete"]
    body = complete_xml(etags, digests)
    done = requests.post(complete["url"], data=body, headers=complete["headers"], timeout=30)
    assert (complete["method"], done.status_code) == ("POST", 200), done.content
    stored = strict.get_object(Bucket=BUCKET, Key=answer["key"])["Body"].read()
    assert stored == data

    def ask() -> dict[str, Any]:
        response = app.lambda_handler(rest_event("/presign", json.dumps(request)), None)
        result: dict[str, Any] = body_of(response)["results"][0]
        return result

    # Not a duplicate until the verifier has hashed it (this front runs none on completion).
    assert ask()["status"] == "retry"
    assert verify_completed(app.default_dependencies().objects, answer["key"]) == "stored"
    assert ask() == {"filename": "huge.csv", "key": answer["key"], "status": "duplicate"}
