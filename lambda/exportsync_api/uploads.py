"""POST /upload: check each ``file`` part against the manifest, then store it under its key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from exportsync_wire import GZIP, ErrorCode, ResultsJson, Status, UploadResultJson, limits

from .budget import Budget
from .errors import bad_request, unprocessable
from .form import FilePart, Form
from .inflate import InflateError, inflate_budget, inflate_gzip
from .keys import object_key, owner
from .pool import UNHURRIED, Entry, Pool
from .resume import VERIFYING_ANSWER, stored_answer
from .stores import ObjectStore

__all__ = [
    "ManifestEntry",
    "PlannedUpload",
    "file_entry",
    "form_user",
    "parse_manifest",
    "plan_upload",
    "upload_form",
]


@dataclass(frozen=True)
class ManifestEntry:
    filename: str | None = None
    sha256: str | None = None
    size: int | None = None
    # "gzip": the part travels compressed; sha256 and size describe the inflated bytes.
    encoding: str | None = None


@dataclass(frozen=True)
class PlannedUpload:
    """One file part after the checks: ``error`` set means rejected, else store ``data``."""

    filename: str | None
    key: str | None
    sha256: str
    size: int
    data: bytes
    error: str | None = None
    # A refusal of this request, not of the file: send it again in another one.
    retry: bool = False

    def result(self, status: Status) -> UploadResultJson:
        out: UploadResultJson = {
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
    except (RecursionError, ValueError):  # ValueError: JSONDecodeError, an int over 4,300 digits
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
    encoding = entry.get("encoding")
    if encoding is not None and not isinstance(encoding, str):
        raise bad_request(ErrorCode.INVALID_MANIFEST, f"{where}.encoding must be a string")
    return ManifestEntry(filename=filename, sha256=sha256, size=size, encoding=encoding)


def plan_upload(
    part: FilePart, entry: ManifestEntry, user: str, budget: Budget | None = None
) -> PlannedUpload:
    """Digest the part (inflated first when gzip), check it against its manifest entry,
    derive its key. ``budget`` bounds what one request may inflate (None: no bound)."""
    decoded = _decoded(part, entry, budget)
    if not isinstance(decoded, bytes):
        sha256 = (entry.sha256 or hashlib.sha256(part.data).hexdigest()).lower()
        size = entry.size if entry.size is not None else len(part.data)
        return PlannedUpload(part.filename, None, sha256, size, b"", decoded.error, decoded.retry)
    digest = hashlib.sha256(decoded).hexdigest()
    size = len(decoded)

    def planned(key: str | None, error: str | None = None) -> PlannedUpload:
        return PlannedUpload(part.filename, key, digest, size, decoded, error)

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


@dataclass(frozen=True)
class _Undecodable:
    error: str
    retry: bool = False


def _decoded(part: FilePart, entry: ManifestEntry, budget: Budget | None) -> bytes | _Undecodable:
    """The part's bytes as stored: itself, or inflated within its declared size."""
    if entry.encoding in (None, "identity"):
        return part.data
    if entry.encoding != GZIP:
        return _Undecodable(f"unsupported_encoding: {entry.encoding!r} (use gzip)")
    if entry.size is None:
        return _Undecodable("missing_size: a gzip part needs its inflated size in the manifest")
    if entry.size > limits.INFLATED_BYTES:
        return _Undecodable(
            f"too_large: a gzip part inflates to at most {limits.INFLATED_BYTES} bytes; presign it"
        )
    if budget is not None and not budget.take(entry.size):
        return _Undecodable("request_full: this request inflates too much; send it again", True)
    try:
        return inflate_gzip(part.data, entry.size)
    except InflateError as exc:
        return _Undecodable(f"inflate_failed: {exc}")


def file_entry(
    part: FilePart,
    entry: ManifestEntry,
    user: str,
    store: ObjectStore,
    budget: Budget | None = None,
) -> Entry[UploadResultJson]:
    """One file part's answer: a rejection now, or its S3 write to run on the pool."""
    plan = plan_upload(part, entry, user, budget)
    if plan.error is not None or plan.key is None:
        return Entry(plan.result(Status.RETRY if plan.retry else Status.REJECTED))
    key = plan.key
    fields = plan.result(Status.RETRY)  # until the write answers

    def write() -> UploadResultJson:
        outcome = store.put_if_absent(key, plan.data, plan.sha256)
        if outcome == Status.DUPLICATE:
            # What is there may be a multipart object not yet verified against its sha256.
            return {**fields, **(stored_answer(store, key) or VERIFYING_ANSWER)}
        return {**fields, "status": outcome}

    return Entry(fields, write, f"object:{key}")


def form_user(form: Form, user: str | None) -> str:
    """The key's user, else the ``user_id`` part; 400 when neither names a valid user."""
    return owner(user, form.fields.get("user_id"), "user_id part")


def upload_form(
    form: Form, user: str | None, store: ObjectStore, pool: Pool = UNHURRIED
) -> ResultsJson[UploadResultJson]:
    """Run the whole route on a parsed form; 422 (with the results) when nothing was valid."""
    user = form_user(form, user)
    if not form.files:
        raise unprocessable(ErrorCode.NO_FILES, "the request has no part named 'file'")
    manifest = parse_manifest(form.fields.get("manifest"), len(form.files))
    budget = inflate_budget()
    entries = [
        file_entry(part, entry, user, store, budget)
        for part, entry in zip(form.files, manifest, strict=True)
    ]
    results = pool.run(entries)
    if all(result["status"] == Status.REJECTED for result in results):
        raise unprocessable(ErrorCode.NOTHING_VALID, "no file part was valid", {"results": results})
    return {"results": results}
