"""The JSON shapes of requests and answers, and the presign entry both sides build."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NotRequired, TypedDict

from .status import Status

__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "ManifestEntryJson",
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
    """One large file announced to ``POST /presign``."""

    filename: str
    sha256: str
    size: int

    def to_json(self) -> PresignFileJson:
        return {"filename": self.filename, "sha256": self.sha256, "size": self.size}


class PresignFileJson(TypedDict):
    filename: str
    sha256: str  # 64 hex digits
    size: int


class PresignRequestJson(TypedDict):
    files: list[PresignFileJson]
    user_id: NotRequired[str]  # only where the gateway gives no key identity


class ManifestEntryJson(TypedDict, total=False):
    """One entry of the ``manifest`` part, for the ``file`` part in the same position."""

    filename: str
    sha256: str
    size: int


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


class PresignResultJson(TypedDict):
    filename: str
    key: str
    status: Status
    url: NotRequired[str]
    method: NotRequired[str]  # "PUT"
    headers: NotRequired[dict[str, str]]
    expires_at: NotRequired[str]  # ISO-8601, UTC, "Z"


class ResultsJson(TypedDict):
    """Every route's 200 answer: one result per entry, in request order."""

    results: list[dict[str, object]]


class ErrorDetail(TypedDict):
    code: str
    message: str


class ErrorBody(TypedDict):
    """The function's error answer (the gateway's own are ``{"message": ...}``)."""

    error: ErrorDetail
