"""The strict S3 checks on URLs botocore really presigned, with time passed in."""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.config import Config

from exportsync_devstack.s3_checks import PresignedRequest, check_body, check_presigned

SECRETS = {"testing": "testing"}
HOST = "127.0.0.1:9"
DATA = b"date,steps\n" + b"2026-02-10,8123\n" * 50
EXPIRES = 900


def _checksum(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _presign(
    secret: str = "testing",  # noqa: S107 -- the devstack's dummy credential
    checksum: str = _checksum(DATA),
) -> tuple[str, float]:
    """A PUT URL as the Lambda makes it (checksum and length signed), and when it was signed."""
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{HOST}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key=secret,
        config=Config(signature_version="s3v4"),
    )
    url = s3.generate_presigned_url(
        "put_object",
        Params={
            "Bucket": "bucket",
            "Key": "uploads/alice/abc/big file.csv",
            "ChecksumSHA256": checksum,
            "ContentLength": len(DATA),
        },
        ExpiresIn=EXPIRES,
        HttpMethod="PUT",
    )
    signed_at = parse_qs(urlsplit(url).query)["X-Amz-Date"][0]
    return url, datetime.strptime(signed_at, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


def _request(url: str, **headers: str) -> PresignedRequest:
    parts = urlsplit(url)
    sent = {
        "Host": HOST,
        "Content-Length": str(len(DATA)),
        "x-amz-checksum-sha256": _checksum(DATA),
        **headers,
    }
    return PresignedRequest(
        "PUT", f"{parts.path}?{parts.query}", {k: v for k, v in sent.items() if v}
    )


def _code(refusal: object) -> str | None:
    return getattr(refusal, "code", None)


def test_a_request_exactly_as_presigned_passes() -> None:
    url, signed_at = _presign()
    request = _request(url)
    assert check_presigned(request, SECRETS, signed_at + 1) is None
    assert check_body(request, DATA) is None


def test_the_signature_is_recomputed_not_trusted() -> None:
    url, signed_at = _presign(secret="not-the-devstack-secret")
    refusal = check_presigned(_request(url), SECRETS, signed_at)
    assert refusal is not None
    assert (refusal.status, refusal.code) == (403, "SignatureDoesNotMatch")
    url, _ = _presign()
    forged = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")[:-1]
    assert _code(check_presigned(_request(forged), SECRETS, signed_at)) == "SignatureDoesNotMatch"


def test_an_unknown_access_key_is_refused() -> None:
    url, signed_at = _presign()
    refusal = check_presigned(_request(url), {"someone-else": "testing"}, signed_at)
    assert refusal is not None
    assert (refusal.status, refusal.code) == (403, "InvalidAccessKeyId")


def test_expiry_is_x_amz_date_plus_x_amz_expires() -> None:
    url, signed_at = _presign()
    assert check_presigned(_request(url), SECRETS, signed_at + EXPIRES) is None
    refusal = check_presigned(_request(url), SECRETS, signed_at + EXPIRES + 1)
    assert refusal is not None
    assert (refusal.status, refusal.code, refusal.message) == (
        403,
        "AccessDenied",
        "Request has expired",
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-checksum-sha256": ""},  # a signed header left out
        {"Content-Length": ""},
        {"Content-Length": str(len(DATA) - 1)},  # a signed header with another value
        {"x-amz-checksum-sha256": _checksum(b"other bytes")},
        {"Host": "127.0.0.1:10"},
    ],
)
def test_signed_headers_must_be_present_and_equal(headers: dict[str, str]) -> None:
    url, signed_at = _presign()
    refusal = check_presigned(_request(url, **headers), SECRETS, signed_at)
    assert refusal is not None
    assert (refusal.status, refusal.code) == (403, "SignatureDoesNotMatch")


def test_an_unsigned_amz_header_is_refused() -> None:
    url, signed_at = _presign()
    refusal = check_presigned(_request(url, **{"x-amz-meta-owner": "mallory"}), SECRETS, signed_at)
    assert refusal is not None
    assert (refusal.status, refusal.code) == (403, "AccessDenied")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (DATA[:100] + b"X" + DATA[101:], 400, "BadDigest"),  # torn: one byte differs
        (DATA[::-1], 400, "BadDigest"),  # swapped: same length, other content
        (DATA[:-10], 400, "IncompleteBody"),  # truncated: fewer bytes than Content-Length
    ],
)
def test_the_body_must_match_its_length_and_checksum(body: bytes, status: int, code: str) -> None:
    url, _ = _presign()
    refusal = check_body(_request(url), body)
    assert refusal is not None
    assert (refusal.status, refusal.code) == (status, code)
    error = ET.fromstring(refusal.xml("/bucket/key"))  # noqa: S314 -- our own XML
    assert error.tag == "Error"
    assert error.findtext("Code") == code
    assert error.findtext("Resource") == "/bucket/key"


def test_a_checksum_header_in_hex_is_an_invalid_value() -> None:
    """S3 wants base64 of the digest: a URL signed over the hex digest is refused as sent."""
    hexed = hashlib.sha256(DATA).hexdigest()
    url, signed_at = _presign(checksum=hexed)
    refusal = check_presigned(_request(url, **{"x-amz-checksum-sha256": hexed}), SECRETS, signed_at)
    assert refusal is not None
    assert (refusal.status, refusal.code) == (400, "InvalidRequest")


def test_x_amz_content_sha256_is_checked_against_the_body() -> None:
    url, _ = _presign()
    request = _request(url, **{"x-amz-content-sha256": hashlib.sha256(b"other").hexdigest()})
    assert _code(check_body(request, DATA)) == "XAmzContentSHA256Mismatch"
    unsigned = _request(url, **{"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    assert check_body(unsigned, DATA) is None
