"""What S3 checks on a presigned PUT before it stores a byte, as a pure function.

moto accepts any signature, any expiry and any checksum; real S3 does not. `check_presigned` takes
a request as it arrived and answers with the refusal S3 would give, or None. The signature is
recomputed with botocore's own presigning signer (`S3SigV4QueryAuth`) over the same canonical
request, with the credentials the devstack hands its Lambda.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

__all__ = [
    "MAX_EXPIRES",
    "PresignedRequest",
    "S3Refusal",
    "check_body",
    "check_presigned",
    "is_presigned",
]

MAX_EXPIRES = 604800  # SigV4 query signatures live at most 7 days
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_UNSIGNED = ("UNSIGNED-PAYLOAD", "STREAMING-")
# Headers a client may send unsigned, as S3 allows (x-amz-* must all be signed, bar these).
_UNSIGNED_AMZ = frozenset({"x-amz-content-sha256"})


@dataclass(frozen=True)
class S3Refusal:
    """One of S3's error answers: status, error code and message, as an XML body."""

    status: int
    code: str
    message: str

    def xml(self, resource: str = "", request_id: str = "devstack") -> bytes:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>"
            f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
        ).encode()


SIGNATURE_MISMATCH = S3Refusal(
    403,
    "SignatureDoesNotMatch",
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method.",
)
EXPIRED = S3Refusal(403, "AccessDenied", "Request has expired")
NOT_SIGNED = S3Refusal(
    403, "AccessDenied", "There were headers present in the request which were not signed"
)
UNKNOWN_KEY = S3Refusal(
    403,
    "InvalidAccessKeyId",
    "The AWS Access Key Id you provided does not exist in our records.",
)
MISSING_LENGTH = S3Refusal(
    411, "MissingContentLength", "You must provide the Content-Length HTTP header."
)
INCOMPLETE_BODY = S3Refusal(
    400,
    "IncompleteBody",
    "You did not provide the number of bytes specified by the Content-Length HTTP header",
)
BAD_DIGEST = S3Refusal(
    400, "BadDigest", "The SHA256 you specified did not match the calculated checksum."
)
CONTENT_SHA_MISMATCH = S3Refusal(
    400,
    "XAmzContentSHA256Mismatch",
    "The provided 'x-amz-content-sha256' header does not match what was computed.",
)
BAD_CHECKSUM_VALUE = S3Refusal(
    400, "InvalidRequest", "Value for x-amz-checksum-sha256 header is invalid."
)


def _query_error(message: str) -> S3Refusal:
    return S3Refusal(400, "AuthorizationQueryParametersError", message)


@dataclass(frozen=True)
class PresignedRequest:
    """A request as it arrived: method, the raw target (path and query, still percent-encoded)
    and its headers (names in any case, one value each)."""

    method: str
    target: str
    headers: Mapping[str, str]

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


def is_presigned(target: str) -> bool:
    """True when the query carries a SigV4 query signature (else the request is header-signed)."""
    return any(k == "X-Amz-Signature" for k, _ in parse_qsl(urlsplit(target).query))


def check_presigned(
    request: PresignedRequest, secrets: Mapping[str, str], now: float
) -> S3Refusal | None:
    """Everything S3 can judge from the request line and headers, before reading the body."""
    parts = urlsplit(request.target)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return _query_error('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    scope = params.get("X-Amz-Credential", "").split("/")
    if len(scope) != 5 or scope[3:] != ["s3", "aws4_request"]:
        return _query_error("Error parsing the X-Amz-Credential parameter")
    access_key, day = scope[0], scope[1]
    try:
        signed_at = datetime.strptime(params.get("X-Amz-Date", ""), _AMZ_DATE).replace(tzinfo=UTC)
        expires = int(params.get("X-Amz-Expires", ""))
    except ValueError:
        return _query_error("X-Amz-Date and X-Amz-Expires must be a SigV4 time and seconds")
    if not 1 <= expires <= MAX_EXPIRES or not params["X-Amz-Date"].startswith(day):
        return _query_error("X-Amz-Expires must be 1 to 604800 seconds, in the credential's day")
    if access_key not in secrets:
        return UNKNOWN_KEY
    if now > signed_at.timestamp() + expires:
        return EXPIRED
    signed = params.get("X-Amz-SignedHeaders", "").split(";")
    if any(request.header(name) is None for name in signed):
        # The canonical request names a header the request lacks: it cannot match.
        return SIGNATURE_MISMATCH
    sent_amz = {k.lower() for k in request.headers if k.lower().startswith("x-amz-")}
    if sent_amz - set(signed) - _UNSIGNED_AMZ:
        return NOT_SIGNED
    expected = _signature(request, params, signed, Credentials(access_key, secrets[access_key]))
    if not hmac.compare_digest(expected, params.get("X-Amz-Signature", "")):
        return SIGNATURE_MISMATCH
    if not (request.header("content-length") or "").isdigit():
        return MISSING_LENGTH
    checksum = request.header("x-amz-checksum-sha256")
    if checksum is not None and _digest_b64(checksum) is None:
        return BAD_CHECKSUM_VALUE
    return None


def _signature(
    request: PresignedRequest, params: Mapping[str, str], signed: list[str], key: Credentials
) -> str:
    """The signature botocore would have put on this request: same canonical request, same key."""
    parts = urlsplit(request.target)
    # The canonical query is every parameter but the signature, in the encoding the URL has.
    query = "&".join(p for p in parts.query.split("&") if not p.startswith("X-Amz-Signature="))
    host = request.header("host") or ""
    aws_request = AWSRequest(
        method=request.method,
        url=f"http://{host}{parts.path}?{query}",
        headers={name: request.header(name) or "" for name in signed},
    )
    aws_request.context["timestamp"] = params["X-Amz-Date"]
    region = params["X-Amz-Credential"].split("/")[2]
    signer = S3SigV4QueryAuth(key, "s3", region, expires=int(params["X-Amz-Expires"]))
    canonical = signer.canonical_request(aws_request)
    return str(signer.signature(signer.string_to_sign(aws_request, canonical), aws_request))


def _digest_b64(value: str) -> bytes | None:
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest if len(digest) == hashlib.sha256().digest_size else None


def check_body(request: PresignedRequest, body: bytes) -> S3Refusal | None:
    """What S3 checks once the body is in: its length, then the digests the headers promise."""
    if len(body) != int(request.header("content-length") or "0"):
        return INCOMPLETE_BODY
    content_sha = request.header("x-amz-content-sha256")
    if (
        content_sha is not None
        and not content_sha.startswith(_UNSIGNED)
        and content_sha.lower() != hashlib.sha256(body).hexdigest()
    ):
        return CONTENT_SHA_MISMATCH
    checksum = request.header("x-amz-checksum-sha256")
    if (
        checksum is not None
        and not _completes_upload(request)
        and _digest_b64(checksum) != hashlib.sha256(body).digest()
    ):
        return BAD_DIGEST
    return None


def _completes_upload(request: PresignedRequest) -> bool:
    """A CompleteMultipartUpload: its checksum header is the object's (the parts' composite,
    checked by ``s3_multipart``), not its XML body's."""
    query = dict(parse_qsl(urlsplit(request.target).query, keep_blank_values=True))
    return request.method == "POST" and "uploadId" in query
