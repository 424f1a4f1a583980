"""What AWS checks on a header-signed request (``Authorization: AWS4-HMAC-SHA256 ...``), as a
pure function: the devstack's front refuses an unsigned request, an unknown access key or a
wrong signature, for S3, DynamoDB and API Gateway alike, before moto sees it.

moto's server checks nothing, so without this any local process could list every user's
objects and write into any prefix. The signature is recomputed with botocore's own signer over
the same canonical request (its payload hash: the ``x-amz-content-sha256`` header when sent, as
S3 signs, else the body's sha256).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .s3_checks import SIGNATURE_MISMATCH, UNKNOWN_KEY, PresignedRequest, S3Refusal

__all__ = ["ANONYMOUS", "check_signed"]

ANONYMOUS = S3Refusal(403, "AccessDenied", "Anonymous access is forbidden for this endpoint.")
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


def check_signed(
    request: PresignedRequest, body: bytes, secrets: Mapping[str, str]
) -> S3Refusal | None:
    """None when ``request`` carries a valid SigV4 header signature by a key in ``secrets``."""
    authorization = request.header("authorization")
    if authorization is None:
        return ANONYMOUS
    match = _AUTHORIZATION.fullmatch(authorization.strip())
    if match is None:
        return SIGNATURE_MISMATCH
    scope = match["credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return SIGNATURE_MISMATCH
    access_key, _day, region, service, _ = scope
    if access_key not in secrets:
        return UNKNOWN_KEY
    signed = match["signed"].split(";")
    stamp = request.header("x-amz-date")
    if stamp is None or any(request.header(name) is None for name in signed):
        return SIGNATURE_MISMATCH
    key = Credentials(access_key, secrets[access_key])
    expected = _signature(request, body, signed, key, (region, service, stamp))
    if not hmac.compare_digest(expected, match["signature"]):
        return SIGNATURE_MISMATCH
    return None


def _signature(
    request: PresignedRequest,
    body: bytes,
    signed: list[str],
    key: Credentials,
    scope: tuple[str, str, str],
) -> str:
    """botocore's signature for this request: same canonical request, same key and scope."""
    region, service, stamp = scope
    host = request.header("host") or ""
    aws_request = AWSRequest(
        method=request.method,
        url=f"http://{host}{request.target}",
        headers={name: request.header(name) or "" for name in signed},
        data=body,
    )
    aws_request.context["timestamp"] = stamp
    signer_class = S3SigV4Auth if service == "s3" else SigV4Auth
    signer = signer_class(key, service, region)
    canonical = signer.canonical_request(aws_request)
    return str(signer.signature(signer.string_to_sign(aws_request, canonical), aws_request))
