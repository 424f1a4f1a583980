"""POST /upload: check each ``file`` part against the manifest, then store it under its key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from exportsync_wire import ErrorCode, Status

from .errors import bad_request, unprocessable
from .form import FilePart, Form
from .keys import InvalidKeyPart, object_key, user_prefix
from .stores import ObjectStore

__all__ = ["ManifestEntry", "PlannedUpload", "parse_manifest", "plan_upload", "upload_form"]


@dataclass(frozen=True)
class ManifestEntry:
    filename: str | None = None
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class PlannedUpload:
    """One file part after the checks: ``error`` set means rejected, else store ``data``."""

    filename: str | None
    key: str | None
    sha256: str
    size: int
    data: bytes
    error: str | None = None

    def result(self, status: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "filename": self.filename,
            "key": self.key,
            "sha256": self.sha256,
            "size": self.size,
            "status": status,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


def parse_manifest(text: str | None, file_count: int) -> list[ManifestEntry]:
    """The ``manifest`` part: a JSON list with one entry per file part (400 if malformed)."""
    if text is None:
        return [ManifestEntry() for _ in range(file_count)]
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise bad_request(ErrorCode.INVALID_MANIFEST, "manifest is not valid JSON") from None
    if not isinstance(value, list):
        raise bad_request(ErrorCode.INVALID_MANIFEST, "manifest must be a JSON list")
    if len(value) != file_count:
        raise bad_request(ErrorCode.INVALID_MANIFEST, "manifest needs one entry per file part")
    return [_manifest_entry(index, entry) for index, entry in enumerate(value)]


def _manifest_entry(index: int, entry: object) -> ManifestEntry:
    where = f"manifest[{index}]"
    if not isinstance(entry, dict):
        raise bad_request(ErrorCode.INVALID_MANIFEST, f"{where} must be an object")
    filename, sha256, size = entry.get("filename"), entry.get("sha256"), entry.get("size")
    if filename is not None and not isinstance(filename, str):
        raise bad_request(ErrorCode.INVALID_MANIFEST, f"{where}.filename must be a string")
    if sha256 is not None and not isinstance(sha256, str):
        raise bad_request(ErrorCode.INVALID_MANIFEST, f"{where}.sha256 must be a string")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise bad_request(
            ErrorCode.INVALID_MANIFEST, f"{where}.size must be a non-negative integer"
        )
    return ManifestEntry(filename=filename, sha256=sha256, size=size)


def plan_upload(part: FilePart, entry: ManifestEntry, user: str) -> PlannedUpload:
    """Pure: digest the part, check it against its manifest entry, derive its key."""
    digest = hashlib.sha256(part.data).hexdigest()
    size = len(part.data)

    def planned(key: str | None, error: str | None = None) -> PlannedUpload:
        return PlannedUpload(part.filename, key, digest, size, part.data, error)

    if not part.filename:
        return planned(None, "missing_filename: a file part needs a filename")
    key = object_key(user, digest, part.filename)
    if entry.filename is not None and entry.filename != part.filename:
        return planned(key, "manifest_mismatch: manifest filename differs from the part's")
    if entry.sha256 is not None and entry.sha256.lower() != digest:
        return planned(key, "sha256_mismatch: content does not match the manifest sha256")
    if entry.size is not None and entry.size != size:
        return planned(key, "size_mismatch: content does not match the manifest size")
    return planned(key)


def upload_form(form: Form, user: str | None, store: ObjectStore) -> dict[str, Any]:
    """Run the whole route on a parsed form; 422 (with the results) when nothing was valid."""
    user = user if user is not None else form.fields.get("user_id")
    if not user:
        raise bad_request(ErrorCode.MISSING_USER, "no API key identity and no user_id part")
    try:
        user_prefix(user)
    except InvalidKeyPart as exc:
        raise bad_request(ErrorCode.INVALID_USER, str(exc)) from None
    if not form.files:
        raise unprocessable(ErrorCode.NO_FILES, "the request has no part named 'file'")
    entries = parse_manifest(form.fields.get("manifest"), len(form.files))
    results: list[dict[str, Any]] = []
    for part, entry in zip(form.files, entries, strict=True):
        plan = plan_upload(part, entry, user)
        if plan.error is not None or plan.key is None:
            results.append(plan.result(Status.REJECTED))
            continue
        results.append(plan.result(store.put_if_absent(plan.key, plan.data, plan.sha256)))
    if all(result["status"] == Status.REJECTED for result in results):
        raise unprocessable(ErrorCode.NOTHING_VALID, "no file part was valid", {"results": results})
    return {"results": results}
