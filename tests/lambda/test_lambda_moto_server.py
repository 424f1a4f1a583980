"""Against moto's real server over HTTP on 127.0.0.1, through ``lambda_handler`` as the devstack
calls it (environment set, context None): presign, then a real PUT of the bytes.

S3 calls go through the devstack's strict front (``AWS_ENDPOINT_URL_S3``), which checks presigned
PUTs as real S3 does; moto alone accepts any signature and any checksum.
"""

from __future__ import annotations

import hashlib
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from apigw_events import body_of, rest_event
from lambda_support import BUCKET, REGION, TABLE, create_resources
from moto.server import ThreadedMotoServer

from exportsync_api import app
from exportsync_devstack.s3_front import serve_s3_front

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_front(moto_endpoint: str) -> Iterator[str]:
    """The strict front before moto's S3, trusting the dummy credentials of ``aws_env``."""
    front = serve_s3_front(moto_endpoint, {"testing": "testing"}, time.time)
    try:
        yield front.url
    finally:
        front.stop()


@pytest.fixture
def live(moto_endpoint: str, s3_front: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The environment the devstack sets before calling the handler, and fresh resources."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_front)
    monkeypatch.setenv("EXPORTSYNC_BUCKET", BUCKET)
    monkeypatch.setenv("EXPORTSYNC_TABLE", TABLE)
    monkeypatch.setenv("EXPORTSYNC_KEY_USERS", json.dumps({"kid-alice": "alice"}))
    monkeypatch.setenv("EXPORTSYNC_PRESIGN_SECONDS", "120")
    s3 = boto3.client("s3", region_name=REGION)
    create_resources(s3, boto3.client("dynamodb", region_name=REGION))
    app.default_dependencies.cache_clear()
    yield s3
    app.default_dependencies.cache_clear()


def _presign(data: bytes, name: str = "big.csv") -> dict[str, object]:
    sha = hashlib.sha256(data).hexdigest()
    request = {"files": [{"filename": name, "sha256": sha, "size": len(data)}]}
    response = app.lambda_handler(rest_event("/presign", json.dumps(request)), None)
    assert response["statusCode"] == 200
    result: dict[str, object] = body_of(response)["results"][0]
    return result


def test_presigned_put_lands_the_bytes_and_second_presign_is_duplicate(live: object) -> None:
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
    stored = live.get_object(Bucket=BUCKET, Key=first["key"])["Body"].read()  # type: ignore[attr-defined]
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
def test_corrupted_body_is_rejected_by_s3(live: object, corrupted: bytes) -> None:
    data = b"the real bytes\n"
    first = _presign(data)
    headers = first["headers"]
    assert isinstance(headers, dict)
    put = requests.put(str(first["url"]), data=corrupted, headers=headers, timeout=10)
    # Same length: the checksum refuses it (BadDigest); shorter: the signed length does.
    expected = (400, "BadDigest") if len(corrupted) == len(data) else (403, "SignatureDoesNotMatch")
    assert (put.status_code, _code(put.content)) == expected
    listing = live.list_objects_v2(Bucket=BUCKET)  # type: ignore[attr-defined]
    assert listing.get("KeyCount") == 0


def _code(xml: bytes) -> str | None:
    return ET.fromstring(xml).findtext("Code")  # noqa: S314 -- the devstack front's own XML
