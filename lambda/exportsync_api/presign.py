"""POST /presign: presigned PUT URLs for large files, a presigned multipart upload for files
over one PUT's limit (or when asked), or "duplicate" when the object exists."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from exportsync_wire import ErrorCode, PresignFile, PresignResultJson, ResultsJson, Status, limits
from exportsync_wire.parts import composite_sha256

from .budget import Budget
from .errors import bad_request
from .keys import object_key, owner
from .multipart import PartPlan, multipart_answer, plan_parts, url_budget
from .pool import UNHURRIED, Entry, Pool
from .resume import RecordState, UploadRecord, stored_answer
from .stores import ObjectStore, checksum_b64

__all__ = [
    "PresignRequest",
    "check_file",
    "iso_utc",
    "parse_presign",
    "presign_entry",
    "presign_files",
    "presign_user",
]

_S3_MAX_PARTS = 10_000
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
    if not isinstance(files, list) or not 1 <= len(files) <= limits.MAX_ROUTE_ENTRIES:
        raise bad_request(
            ErrorCode.INVALID_BODY,
            f"'files' must be a list of 1 to {limits.MAX_ROUTE_ENTRIES}",
        )
    user_id = value.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise bad_request(ErrorCode.INVALID_BODY, "'user_id' must be a string")
    return PresignRequest([_file(index, entry) for index, entry in enumerate(files)], user_id)


def _file(index: int, entry: object) -> PresignFile:
    checked = check_file(f"files[{index}]", entry)
    if isinstance(checked, str):
        raise bad_request(ErrorCode.INVALID_BODY, checked)
    return checked


def check_file(where: str, entry: object) -> PresignFile | str:
    """Pure: one presign entry, or what is wrong with it (naming ``where``)."""
    if not isinstance(entry, dict):
        return f"{where} must be an object"
    filename, sha256, size = entry.get("filename"), entry.get("sha256"), entry.get("size")
    if not isinstance(filename, str) or not filename:
        return f"{where}.filename must be a non-empty string"
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        return f"{where}.sha256 must be 64 hex digits"
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= limits.OBJECT_BYTES:
        return f"{where}.size must be an integer from 0 to 5 TiB"
    parts, upload_id = entry.get("parts"), entry.get("upload_id")
    if parts is not None and (
        isinstance(parts, bool) or not isinstance(parts, int) or not 1 <= parts <= _S3_MAX_PARTS
    ):
        return f"{where}.parts must be an integer from 1 to {_S3_MAX_PARTS}"
    if upload_id is not None and (not isinstance(upload_id, str) or not 0 < len(upload_id) < 1024):
        return f"{where}.upload_id must be a non-empty string"
    digests = entry.get("part_sha256")
    if digests is not None and (
        not isinstance(digests, list)
        or not 1 <= len(digests) <= _S3_MAX_PARTS
        or not all(isinstance(d, str) and _SHA256.fullmatch(d) for d in digests)
    ):
        return f"{where}.part_sha256 must be a list of 1 to {_S3_MAX_PARTS} sha256 (64 hex digits)"
    part_sha256 = tuple(d.lower() for d in digests) if digests is not None else None
    return PresignFile(filename, sha256.lower(), size, parts, upload_id, part_sha256)


def presign_user(user: str | None, request_user: str | None) -> str:
    """The key's user, else the request's ``user_id``; 400 when neither names a valid user."""
    return owner(user, request_user, "user_id field")


def presign_entry(
    file: PresignFile,
    user: str,
    store: ObjectStore,
    expires_in: int,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    urls: Budget | None = None,
) -> Entry[PresignResultJson]:
    """One file's answer: "duplicate" when its key exists, else a presigned PUT, or a presigned
    multipart upload (``urls`` bounds how many URLs the request's answer may hold)."""
    key = object_key(user, file.sha256, file.filename)
    fields: PresignResultJson = {"filename": file.filename, "key": key, "status": Status.RETRY}
    plan = _plan(file)
    if isinstance(plan, str):
        return Entry({**fields, "status": Status.REJECTED, "error": plan})
    if urls is not None and not urls.take(plan.urls if plan is not None else 1):
        error = "request_full: this request holds too many presigned URLs; send it again"
        return Entry({**fields, "status": Status.RETRY, "error": error})
    if plan is None:
        single = functools.partial(_single, fields, file, store, expires_in, now)
        return Entry(fields, single, f"object:{key}")
    parts = functools.partial(_multipart, fields, file, plan, store, expires_in=expires_in, now=now)
    return Entry(fields, parts, f"object:{key}")


def _plan(file: PresignFile) -> PartPlan | str | None:
    """The parts to presign (None: one PUT), or why the entry is rejected. A multipart ask
    without ``part_sha256`` (an older client) gets one PUT when the file fits one: every
    presigned PUT carries its checksum."""
    if not file.multipart:
        return None
    if file.part_sha256 is None:
        if file.size <= limits.PUT_BYTES:
            return None
        return (
            "part_sha256_required: a multipart upload needs each part's sha256 in part_sha256"
            " (update the client)"
        )
    plan = plan_parts(file.size, file.parts)
    if len(file.part_sha256) != plan.count:
        return (
            f"invalid_body: part_sha256 must hold {plan.count} digests"
            f" (parts of {plan.part_size} bytes)"
        )
    return plan


def _single(
    fields: PresignResultJson,
    file: PresignFile,
    store: ObjectStore,
    expires_in: int,
    now: Callable[[], datetime],
) -> PresignResultJson:
    key = _key(fields)
    stored = stored_answer(store, key)
    if stored is not None:
        return {**fields, **stored}
    # The expiry is computed before signing, so it is never later than the URL's own.
    expires_at = now() + timedelta(seconds=expires_in)
    url = store.presign_put(key, file.sha256, file.size, expires_in)
    return {
        **fields,
        "status": Status.UPLOAD,
        "url": url,
        "method": "PUT",
        "headers": {
            "x-amz-checksum-sha256": checksum_b64(file.sha256),
            "Content-Length": str(file.size),
        },
        "expires_at": iso_utc(expires_at),
    }


def _multipart(
    fields: PresignResultJson,
    file: PresignFile,
    plan: PartPlan,
    store: ObjectStore,
    *,
    expires_in: int,
    now: Callable[[], datetime],
) -> PresignResultJson:
    assert file.part_sha256 is not None  # _plan saw to it
    key = _key(fields)
    record = UploadRecord.from_json(store.load_record(key))
    if file.upload_id is not None:
        refusal = _resume_refusal(file, plan, record)
        if refusal is not None:
            return {**fields, "status": Status.REJECTED, "error": refusal}
    stored = stored_answer(store, key)
    if stored is not None:
        return {**fields, **stored}
    expires_at = now() + timedelta(seconds=expires_in)
    if file.upload_id is not None and record is not None:
        upload_id = record.upload_id
    else:
        upload_id = store.start_multipart(key)
        # Written before any URL is handed out: no upload of ours completes unrecorded.
        record = UploadRecord(upload_id, file.size, plan.part_size, file.part_sha256)
        store.save_record(key, record.to_json())
    urls = [
        store.presign_part(key, upload_id, number, length, digest, expires_in=expires_in)
        for number, (length, digest) in enumerate(
            zip(plan.lengths(file.size), file.part_sha256, strict=True), 1
        )
    ]
    composite = composite_sha256(file.part_sha256)
    complete = store.presign_complete(key, upload_id, composite, file.size, expires_in)
    answer = multipart_answer(
        fields,
        upload_id,
        plan,
        part_urls=urls,
        part_sha256=file.part_sha256,
        complete=(complete, composite, file.size),
    )
    return {**answer, "expires_at": iso_utc(expires_at)}


def _key(fields: PresignResultJson) -> str:
    key = fields["key"]
    assert key is not None  # presign_entry names the key of every entry it sends to work
    return key


def _resume_refusal(file: PresignFile, plan: PartPlan, record: UploadRecord | None) -> str | None:
    """Why ``file.upload_id`` may not be resumed by this ask (its key names the user, the
    sha256 and the file), or None."""
    if record is None or record.upload_id != file.upload_id:
        return "unknown_upload: this upload_id was not begun for this user, file and sha256"
    if record.state == RecordState.REJECTED:
        return (
            "content_mismatch: the completed upload's bytes were not the sha256 its key names;"
            " the object was deleted"
        )
    if (record.size, record.part_size, record.part_sha256) != (
        file.size,
        plan.part_size,
        file.part_sha256,
    ):
        return "upload_mismatch: the upload was begun with another size or other parts"
    return None


def iso_utc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def presign_files(
    request: PresignRequest,
    user: str | None,
    store: ObjectStore,
    expires_in: int,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    pool: Pool = UNHURRIED,
) -> ResultsJson[PresignResultJson]:
    """One result per file, in order (the existence checks run on the pool)."""
    owner = presign_user(user, request.user_id)
    budget = url_budget()
    entries = [
        presign_entry(file, owner, store, expires_in, now=now, urls=budget)
        for file in request.files
    ]
    return {"results": pool.run(entries)}
