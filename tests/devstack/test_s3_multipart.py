"""The S3 front's multipart checks, as pure calls: what S3 refuses that moto takes."""

from __future__ import annotations

import base64
import hashlib

import pytest

from exportsync_devstack.s3_checks import PresignedRequest
from exportsync_devstack.s3_multipart import MultipartLedger

KEY = "/bucket/uploads/alice/abc/big.csv"
PARTS = [b"a" * 100, b"b" * 10]


def _b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _composite(parts: list[bytes]) -> str:
    joined = b"".join(hashlib.sha256(p).digest() for p in parts)
    return base64.b64encode(hashlib.sha256(joined).digest()).decode()


def _ledger(sha256: bool = True) -> MultipartLedger:
    """An upload begun for KEY (as moto answered the create) with both parts stored."""
    ledger = MultipartLedger()
    headers = {"x-amz-checksum-algorithm": "SHA256"} if sha256 else {}
    answer = (
        b"<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>"
    )
    ledger.observe(PresignedRequest("POST", f"{KEY}?uploads", headers), b"", 200, {}, answer)
    for n, part in enumerate(PARTS, 1):
        put = PresignedRequest("PUT", f"{KEY}?uploadId=u1&partNumber={n}", {})
        ledger.observe(put, part, 200, {"ETag": f'"e{n}"'}, b"")
    return ledger


def _xml(numbers: list[int], checksums: bool = True) -> bytes:
    parts = "".join(
        f'<Part><PartNumber>{n}</PartNumber><ETag>"e{n}"</ETag>'
        + (f"<ChecksumSHA256>{_b64(PARTS[(n - 1) % 2])}</ChecksumSHA256>" if checksums else "")
        + "</Part>"
        for n in numbers
    )
    return f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()


def _complete(**headers: str) -> PresignedRequest:
    return PresignedRequest("POST", f"{KEY}?uploadId=u1", headers)


def _absent(_path: str) -> bool:
    return False


def test_an_upload_id_belongs_to_its_key() -> None:
    other = PresignedRequest("PUT", "/bucket/uploads/bob/abc/big.csv?uploadId=u1&partNumber=1", {})
    refusal = _ledger().check(other, b"x", _absent)
    assert refusal is not None
    assert (refusal.status, refusal.code) == (404, "NoSuchUpload")


def test_a_part_of_a_sha256_upload_needs_its_checksum() -> None:
    part = PresignedRequest("PUT", f"{KEY}?uploadId=u1&partNumber=1", {})
    refusal = _ledger().check(part, b"x", _absent)
    assert refusal is not None
    assert refusal.code == "InvalidRequest"
    assert _ledger(sha256=False).check(part, b"x", _absent) is None


def test_the_genuine_completion_passes() -> None:
    request = _complete(
        **{
            "x-amz-checksum-sha256": _composite(PARTS),
            "x-amz-mp-object-size": str(sum(map(len, PARTS))),
            "If-None-Match": "*",
        }
    )
    assert _ledger().check(request, _xml([1, 2]), _absent) is None
    # The composite may carry S3's "-N" suffix.
    suffixed = _complete(**{"x-amz-checksum-sha256": _composite(PARTS) + "-2"})
    assert _ledger().check(suffixed, _xml([1, 2]), _absent) is None


@pytest.mark.parametrize(
    ("headers", "numbers", "checksums", "code"),
    [
        ({"x-amz-checksum-sha256": _composite(PARTS)}, [1], True, "BadDigest"),
        ({"x-amz-mp-object-size": "999"}, [1, 2], True, "InvalidRequest"),
        ({}, [1, 2], False, "InvalidRequest"),
        ({}, [1, 3], True, "InvalidPart"),
    ],
    ids=["a_part_dropped", "another_size", "no_part_checksums", "unknown_part"],
)
def test_a_completion_s3_would_refuse_is_refused(
    headers: dict[str, str], numbers: list[int], checksums: bool, code: str
) -> None:
    refusal = _ledger().check(_complete(**headers), _xml(numbers, checksums), _absent)
    assert refusal is not None
    assert refusal.code == code


def test_if_none_match_refuses_a_completion_over_an_object() -> None:
    refusal = _ledger().check(_complete(**{"If-None-Match": "*"}), _xml([1, 2]), lambda _p: True)
    assert refusal is not None
    assert (refusal.status, refusal.code) == (412, "PreconditionFailed")


def test_a_completed_upload_is_reported_once() -> None:
    ledger = _ledger()
    answer = b"<CompleteMultipartUploadResult/>"
    assert ledger.observe(_complete(), _xml([1, 2]), 200, {}, answer) == KEY
    assert ledger.observe(_complete(), _xml([1, 2]), 200, {}, answer) is None
