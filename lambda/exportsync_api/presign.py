"""POST /presign: presigned PUT URLs for large files, or "duplicate" when the object exists."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from exportsync_wire import ErrorCode, PresignFile, Status, limits

from .errors import bad_request
from .keys import InvalidKeyPart, object_key, user_prefix
from .stores import ObjectStore, checksum_b64

__all__ = ["PresignRequest", "parse_presign", "presign_files"]

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class PresignRequest:
    files: list[PresignFile]
    user_id: str | None


def parse_presign(body: bytes) -> PresignRequest:
    """Pure: ``{"files": [{"filename", "sha256", "size"}], "user_id"?}``; 400 if malformed."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError):
        raise bad_request(ErrorCode.INVALID_JSON, "body is not valid UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise bad_request(ErrorCode.INVALID_BODY, "body must be {'files': [...]}")
    files = value.get("files")
    if not isinstance(files, list) or not 1 <= len(files) <= limits.MAX_ENTRIES_PER_REQUEST:
        raise bad_request(
            ErrorCode.INVALID_BODY,
            f"'files' must be a list of 1 to {limits.MAX_ENTRIES_PER_REQUEST}",
        )
    user_id = value.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise bad_request(ErrorCode.INVALID_BODY, "'user_id' must be a string")
    return PresignRequest([_file(index, entry) for index, entry in enumerate(files)], user_id)


def _file(index: int, entry: object) -> PresignFile:
    where = f"files[{index}]"
    if not isinstance(entry, dict):
        raise bad_request(ErrorCode.INVALID_BODY, f"{where} must be an object")
    filename, sha256, size = entry.get("filename"), entry.get("sha256"), entry.get("size")
    if not isinstance(filename, str) or not filename:
        raise bad_request(ErrorCode.INVALID_BODY, f"{where}.filename must be a non-empty string")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise bad_request(ErrorCode.INVALID_BODY, f"{where}.sha256 must be 64 hex digits")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= limits.PUT_BYTES:
        raise bad_request(
            ErrorCode.INVALID_BODY, f"{where}.size must be an integer from 0 to 5 GiB"
        )
    return PresignFile(filename, sha256.lower(), size)


def presign_files(
    request: PresignRequest,
    user: str | None,
    store: ObjectStore,
    expires_in: int,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """One result per file: "duplicate" when its key exists, else a presigned PUT."""
    user = user if user is not None else request.user_id
    if not user:
        raise bad_request(ErrorCode.MISSING_USER, "no API key identity and no user_id field")
    try:
        user_prefix(user)
    except InvalidKeyPart as exc:
        raise bad_request(ErrorCode.INVALID_USER, str(exc)) from None
    results: list[dict[str, Any]] = []
    for file in request.files:
        key = object_key(user, file.sha256, file.filename)
        if store.exists(key):
            results.append({"filename": file.filename, "key": key, "status": Status.DUPLICATE})
            continue
        # The expiry is computed before signing, so it is never later than the URL's own.
        expires_at = now() + timedelta(seconds=expires_in)
        url = store.presign_put(key, file.sha256, file.size, expires_in)
        results.append(
            {
                "filename": file.filename,
                "key": key,
                "status": Status.UPLOAD,
                "url": url,
                "method": "PUT",
                "headers": {
                    "x-amz-checksum-sha256": checksum_b64(file.sha256),
                    "Content-Length": str(file.size),
                },
                "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
            }
        )
    return {"results": results}
