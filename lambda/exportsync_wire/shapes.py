"""The JSON shapes of requests and answers, and the presign entry both sides build."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, NotRequired, TypedDict, TypeVar

from . import limits
from .batch import Kind
from .status import Status

__all__ = [
    "BatchFileResultJson",
    "BatchPresignResultJson",
    "BatchResultJson",
    "BatchSessionResultJson",
    "CompleteJson",
    "ErrorBody",
    "ErrorDetail",
    "ManifestEntryJson",
    "PartJson",
    "PresignFile",
    "PresignFileJson",
    "PresignRequestJson",
    "PresignResultJson",
    "ResultsJson",
    "SessionResultJson",
    "UploadResultJson",
]


@dataclass(frozen=True)
class PresignFile:
    """One large file announced to ``POST /presign`` (or in a /batch ``presign`` part)."""

    filename: str
    sha256: str
    size: int
    parts: int | None = None  # asks for a multipart upload in about this many parts
    upload_id: str | None = None  # an unfinished multipart upload to presign again
    # Each part's sha256 (hex), as `parts.plan_parts(size, parts)` cuts the file: signed into
    # its part URL, so S3 stores only these bytes. A multipart ask without them is answered
    # with one PUT when the file fits one (an older client), else rejected.
    part_sha256: tuple[str, ...] | None = None

    @property
    def multipart(self) -> bool:
        """Whether the answer is a multipart upload (asked, resumed, or over one PUT)."""
        return self.parts is not None or self.upload_id is not None or self.size > limits.PUT_BYTES

    def to_json(self) -> PresignFileJson:
        out: PresignFileJson = {"filename": self.filename, "sha256": self.sha256, "size": self.size}
        if self.parts is not None:
            out["parts"] = self.parts
        if self.upload_id is not None:
            out["upload_id"] = self.upload_id
        if self.part_sha256 is not None:
            out["part_sha256"] = list(self.part_sha256)
        return out


class PresignFileJson(TypedDict):
    filename: str
    sha256: str  # 64 hex digits
    size: int  # up to limits.OBJECT_BYTES; above limits.PUT_BYTES the answer is multipart
    parts: NotRequired[int]  # 1..10,000: a multipart upload in about this many parts
    upload_id: NotRequired[str]  # fresh URLs for this unfinished multipart upload
    part_sha256: NotRequired[list[str]]  # each part's sha256 (hex), in part order


class PresignRequestJson(TypedDict):
    files: list[PresignFileJson]
    user_id: NotRequired[str]  # only where the gateway gives no key identity


class ManifestEntryJson(TypedDict, total=False):
    """One entry of the ``manifest`` part, for the ``file`` part in the same position."""

    filename: str
    sha256: str  # of the stored (inflated) bytes
    size: int  # of the stored (inflated) bytes; a gzip part's cap
    encoding: str  # "gzip" (GZIP): the part travels compressed


class UploadResultJson(TypedDict):
    filename: str | None
    key: str | None
    sha256: str
    size: int
    status: Status
    error: NotRequired[str]


class SessionResultJson(TypedDict):
    user_id: str | None
    timestamp: str | None
    status: Status
    error: NotRequired[str]


class PartJson(TypedDict):
    number: int  # 1-based
    url: str  # PUT this part's bytes here with exactly ``headers``; keep the answer's ETag
    headers: dict[str, str]  # Content-Length and x-amz-checksum-sha256 (both signed)


class CompleteJson(TypedDict):
    url: str  # POST the CompleteMultipartUpload XML (part numbers, ETags, ChecksumSHA256) here
    method: Literal["POST"]
    headers: NotRequired[dict[str, str]]  # signed: the parts' composite sha256, the size


class PresignResultJson(TypedDict):
    filename: str | None
    key: str | None
    status: Status
    error: NotRequired[str]  # "rejected" or "retry"
    url: NotRequired[str]  # "upload"
    method: NotRequired[Literal["PUT"]]
    headers: NotRequired[dict[str, str]]
    expires_at: NotRequired[str]  # ISO-8601, UTC, "Z"
    upload_id: NotRequired[str]  # "multipart"
    part_size: NotRequired[int]
    parts: NotRequired[list[PartJson]]
    complete: NotRequired[CompleteJson]


class BatchFileResultJson(UploadResultJson):
    kind: Literal[Kind.FILE]


class BatchSessionResultJson(SessionResultJson):
    kind: Literal[Kind.SESSION]


class BatchPresignResultJson(PresignResultJson):
    kind: Literal[Kind.PRESIGN]


# One result of ``POST /batch``: its own route's answer, tagged with the ``kind`` of its entry.
BatchResultJson = BatchFileResultJson | BatchSessionResultJson | BatchPresignResultJson

_Result = TypeVar("_Result")


class ResultsJson(TypedDict, Generic[_Result]):
    """Every route's 200 answer: one result per entry, in request order."""

    results: list[_Result]


class ErrorDetail(TypedDict):
    code: str
    message: str


class ErrorBody(TypedDict):
    """The function's error answer (the gateway's own are ``{"message": ...}``)."""

    error: ErrorDetail
