"""The devstack's strict S3 front over real HTTP: presigned PUTs refused as S3 refuses them."""

from __future__ import annotations

import base64
import hashlib
import socket
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from botocore.config import Config

from exportsync_devstack.clock import FakeClock
from exportsync_devstack.s3_front import serve_s3_front
from support.devstack import DevstackInfo, s3_objects, usage

DATA = b"date,steps\n" + b"2026-02-10,8123\n" * 2000


def _presign(info: DevstackInfo, data: bytes, name: str) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest()
    response = requests.post(
        f"{info.api_url}/presign",
        headers={"x-api-key": info.api_key},
        json={"files": [{"filename": name, "sha256": sha, "size": len(data)}]},
        timeout=30,
    )
    assert response.status_code == 200
    result: dict[str, Any] = response.json()["results"][0]
    assert result["status"] == "upload"
    return result


def _error_code(response: requests.Response) -> str | None:
    assert response.headers["Content-Type"] == "application/xml"
    return ET.fromstring(response.content).findtext("Code")  # noqa: S314 -- the devstack's XML


def _refused(info: DevstackInfo) -> dict[str, int]:
    refused: dict[str, int] = usage(info)["s3"]["refused"]
    return refused


def test_presigned_urls_name_the_front_not_moto(open_devstack: DevstackInfo) -> None:
    """The front is the devstack's only AWS endpoint (moto sits on a private Unix socket)."""
    result = _presign(open_devstack, DATA, "where.csv")
    assert urlsplit(result["url"]).netloc == urlsplit(open_devstack.aws_endpoint).netloc
    # Base64 of the digest, as S3 takes it; the value the front checks the body against.
    assert result["headers"]["x-amz-checksum-sha256"] == base64.b64encode(
        hashlib.sha256(DATA).digest()
    ).decode("ascii")


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("torn", 400, "BadDigest"),  # one byte differs
        ("swapped", 400, "BadDigest"),  # another file's bytes, same length
        ("shorter", 403, "SignatureDoesNotMatch"),  # fewer bytes, honest Content-Length
    ],
)
def test_a_body_that_is_not_the_signed_one_is_refused(
    open_devstack: DevstackInfo, kind: str, status: int, code: str
) -> None:
    name = f"{kind}.csv"
    result = _presign(open_devstack, DATA, name)
    body = {
        "torn": DATA[:500] + b"X" + DATA[501:],
        "swapped": DATA[::-1],
        "shorter": DATA[:-100],
    }[kind]
    before = _refused(open_devstack).get(code, 0)
    put = requests.put(result["url"], data=body, headers=result["headers"], timeout=30)
    assert put.status_code == status
    assert _error_code(put) == code
    assert _refused(open_devstack).get(code, 0) == before + 1
    assert result["key"] not in s3_objects(open_devstack)

    # The same URL with the right bytes lands them: only the body was wrong.
    good = requests.put(result["url"], data=DATA, headers=result["headers"], timeout=30)
    assert good.status_code == 200
    assert s3_objects(open_devstack)[result["key"]] == DATA


def test_a_body_cut_short_of_its_content_length_is_an_incomplete_body(
    open_devstack: DevstackInfo,
) -> None:
    result = _presign(open_devstack, DATA, "cut.csv")
    url = urlsplit(result["url"])
    head = [f"PUT {url.path}?{url.query} HTTP/1.1", f"Host: {url.netloc}"]
    head += [f"{k}: {v}" for k, v in result["headers"].items()]
    with socket.create_connection((url.hostname or "", url.port or 80), timeout=30) as conn:
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + DATA[:-100])
        conn.shutdown(socket.SHUT_WR)  # the connection breaks before the last bytes
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400"
    assert b"<Code>IncompleteBody</Code>" in rest
    assert result["key"] not in s3_objects(open_devstack)


def test_a_missing_signed_header_is_a_signature_mismatch(open_devstack: DevstackInfo) -> None:
    result = _presign(open_devstack, DATA, "bare.csv")
    put = requests.put(result["url"], data=DATA, timeout=30)  # no checksum header
    assert put.status_code == 403
    assert _error_code(put) == "SignatureDoesNotMatch"


def test_an_expired_url_is_refused_before_the_body() -> None:
    """The front in-process with a clock the test moves; nothing reaches the upstream."""
    clock = FakeClock(start=0.0)
    front = serve_s3_front("http://127.0.0.1:9", {"testing": "testing"}, clock.time)
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=front.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(signature_version="s3v4"),
        )
        checksum = base64.b64encode(hashlib.sha256(DATA).digest()).decode("ascii")
        url = s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": "b", "Key": "k", "ChecksumSHA256": checksum},
            ExpiresIn=60,
            HttpMethod="PUT",
        )
        headers = {"x-amz-checksum-sha256": checksum}
        clock.advance(_signed_epoch(url) + 60)
        # At the last second the URL still passes the checks (then the relay finds no moto).
        assert requests.put(url, data=DATA, headers=headers, timeout=30).status_code == 503
        clock.advance(1)
        put = requests.put(url, data=DATA, headers=headers, timeout=30)
        assert put.status_code == 403
        error = ET.fromstring(put.content)  # noqa: S314 -- the front's own XML
        assert (error.findtext("Code"), error.findtext("Message")) == (
            "AccessDenied",
            "Request has expired",
        )
    finally:
        front.stop()


def _signed_epoch(url: str) -> float:
    amz_date = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))["X-Amz-Date"]
    return datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
