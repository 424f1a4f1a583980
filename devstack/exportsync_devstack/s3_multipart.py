"""What S3 checks on the steps of a multipart upload, which moto does not.

moto stores any part under any upload id and completes whatever parts it is given; real S3 ties
an upload id to its key, wants every part of an upload created with ``ChecksumAlgorithm=SHA256``
to carry its ``x-amz-checksum-sha256`` (and stores only bytes that match it), and on completion
wants each part's checksum in the XML, the ``x-amz-checksum-sha256`` header (the parts'
composite: sha256 of their binary digests, optionally suffixed ``-N``) to match, the
``x-amz-mp-object-size`` header to be the parts' total, and ``If-None-Match: *`` to find no
object. `MultipartLedger` keeps what the front saw of each upload (its key, its algorithm, the
digest, size and ETag of every part stored) and answers with S3's refusals.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from .s3_checks import PresignedRequest, S3Refusal

__all__ = ["MultipartLedger", "object_path"]

NO_SUCH_UPLOAD = S3Refusal(
    404,
    "NoSuchUpload",
    "The specified upload does not exist. The upload ID may be invalid, or the upload may have"
    " been aborted or completed.",
)
PART_CHECKSUM_MISSING = S3Refusal(
    400,
    "InvalidRequest",
    "Checksum Type mismatch occurred, expected checksum Type: sha256, actual checksum Type: null",
)
INVALID_PART = S3Refusal(
    400,
    "InvalidPart",
    "One or more of the specified parts could not be found.  The part may not have been"
    " uploaded, or the specified entity tag may not match the part's entity tag.",
)
COMPOSITE_MISMATCH = S3Refusal(
    400, "BadDigest", "The sha256 you specified did not match the calculated checksum."
)
SIZE_MISMATCH = S3Refusal(
    400,
    "InvalidRequest",
    "The provided 'x-amz-mp-object-size' header value does not match the actual object size.",
)
PRECONDITION_FAILED = S3Refusal(
    412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"
)
MALFORMED_XML = S3Refusal(
    400,
    "MalformedXML",
    "The XML you provided was not well-formed or did not validate against our published schema",
)
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def _part_checksum_missing_in_complete(number: int) -> S3Refusal:
    return S3Refusal(
        400,
        "InvalidRequest",
        "The upload was created using a sha256 checksum. The complete request must include the"
        f" checksum for each part. It was missing for part {number} in the request.",
    )


@dataclass
class _Part:
    digest: bytes
    size: int
    etag: str


@dataclass
class _Upload:
    path: str  # /bucket/key, decoded
    sha256: bool  # created with ChecksumAlgorithm=SHA256
    parts: dict[int, _Part] = field(default_factory=dict)


def object_path(target: str) -> str:
    """``/bucket/key`` of a request target, percent-decoding undone."""
    return unquote(urlsplit(target).path)


def _query(target: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))


def _tag(element: ET.Element, name: str) -> str | None:
    for child in element:
        if child.tag in (name, _S3_NS + name):
            return (child.text or "").strip()
    return None


class MultipartLedger:
    """The uploads the front saw begin, thread-safe (the front serves on many threads)."""

    def __init__(self) -> None:
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()

    # -- before the relay ---------------------------------------------------------------------

    def check(
        self, request: PresignedRequest, body: bytes, exists: Callable[[str], bool]
    ) -> S3Refusal | None:
        """S3's refusal of an UploadPart or CompleteMultipartUpload, or None (any other request,
        or an upload the front did not see begin: moto decides)."""
        query = _query(request.target)
        upload_id = query.get("uploadId")
        if upload_id is None:
            return None
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            return None
        if upload.path != object_path(request.target):
            return NO_SUCH_UPLOAD  # an upload id belongs to the key it began for
        if request.method == "PUT" and "partNumber" in query:
            if upload.sha256 and request.header("x-amz-checksum-sha256") is None:
                return PART_CHECKSUM_MISSING
            return None
        if request.method == "POST":
            return self._check_complete(upload, request, body, exists)
        return None

    def _check_complete(
        self,
        upload: _Upload,
        request: PresignedRequest,
        body: bytes,
        exists: Callable[[str], bool],
    ) -> S3Refusal | None:
        try:
            root = ET.fromstring(body)  # noqa: S314 -- a short body from loopback tests
        except ET.ParseError:
            return MALFORMED_XML
        listed: list[_Part] = []
        for element in root:
            if element.tag not in ("Part", _S3_NS + "Part"):
                continue
            number = int(_tag(element, "PartNumber") or "0")
            checksum = _tag(element, "ChecksumSHA256")
            if upload.sha256 and checksum is None:
                return _part_checksum_missing_in_complete(number)
            part = upload.parts.get(number)
            if part is None or (_tag(element, "ETag") or "").strip('"') != part.etag.strip('"'):
                return INVALID_PART
            if checksum is not None and checksum != base64.b64encode(part.digest).decode():
                return INVALID_PART
            listed.append(part)
        if not listed:
            return MALFORMED_XML
        composite = request.header("x-amz-checksum-sha256")
        if composite is not None:
            expected = base64.b64encode(
                hashlib.sha256(b"".join(p.digest for p in listed)).digest()
            ).decode()
            if composite.split("-", 1)[0] != expected:
                return COMPOSITE_MISMATCH
        size = request.header("x-amz-mp-object-size")
        if size is not None and size != str(sum(p.size for p in listed)):
            return SIZE_MISMATCH
        if request.header("if-none-match") == "*" and exists(upload.path):
            return PRECONDITION_FAILED
        return None

    # -- after the relay -----------------------------------------------------------------------

    def observe(
        self,
        request: PresignedRequest,
        body: bytes,
        status: int,
        headers: Mapping[str, str],
        answer: bytes,
    ) -> str | None:
        """Learn from a request upstream answered 2xx: an upload begun, a part stored. Returns
        the object path when the request completed an upload."""
        if not 200 <= status < 300:
            return None
        query = _query(request.target)
        if request.method == "POST" and "uploads" in query:
            self._begun(request, answer)
            return None
        upload_id = query.get("uploadId")
        if upload_id is None:
            return None
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None:
                return None
            if request.method == "PUT" and "partNumber" in query:
                etag = next((v for k, v in headers.items() if k.lower() == "etag"), "")
                digest = hashlib.sha256(body).digest()
                upload.parts[int(query["partNumber"])] = _Part(digest, len(body), etag)
                return None
            if request.method == "POST" and b"<Error>" not in answer[:512]:
                del self._uploads[upload_id]
                return upload.path
        return None

    def _begun(self, request: PresignedRequest, answer: bytes) -> None:
        try:
            upload_id = _tag(ET.fromstring(answer), "UploadId")  # noqa: S314 -- moto's own XML
        except ET.ParseError:
            return
        if not upload_id:
            return
        algorithm = (request.header("x-amz-checksum-algorithm") or "").upper()
        with self._lock:
            self._uploads[upload_id] = _Upload(object_path(request.target), algorithm == "SHA256")
