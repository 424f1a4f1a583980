"""POST /batch: file parts, session parts and presign parts of one request, answered per entry
in request order, each answer tagged with its ``kind``.

A part that cannot be read (a session part that is not JSON, a presign entry without a sha256)
is that entry's ``rejected`` answer: only a malformed multipart body or manifest, a file or
presign entry without an owner, or more than ``limits.MAX_BATCH_ENTRIES`` entries fail the
whole request.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from exportsync_wire import (
    BatchFileResultJson,
    BatchPresignResultJson,
    BatchResultJson,
    BatchSessionResultJson,
    ErrorCode,
    Kind,
    PresignResultJson,
    ResultsJson,
    SessionResultJson,
    Status,
    UploadResultJson,
    limits,
)
from exportsync_wire.batch import MANIFEST_PART

from .budget import Budget
from .errors import bad_request, unprocessable
from .form import FilePart, Form, JsonPart
from .inflate import inflate_budget
from .multipart import url_budget
from .pool import BatchEntry, Entry, Pool
from .presign import check_file, presign_entry
from .sessions import session_values, split_part, text_entry
from .stores import ObjectStore, SessionStore
from .uploads import file_entry, form_user, parse_manifest

__all__ = ["BatchStores", "batch_form"]


@dataclass(frozen=True)
class BatchStores:
    objects: ObjectStore
    sessions: SessionStore
    presign_seconds: int
    pool: Pool = field(default_factory=Pool)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def batch_form(
    form: Form, key_user: str | None, stores: BatchStores
) -> ResultsJson[BatchResultJson]:
    """Run the whole route on a parsed form."""
    too_many = bad_request(
        ErrorCode.TOO_MANY_ENTRIES,
        f"a request holds at most {limits.MAX_BATCH_ENTRIES} entries",
    )
    try:
        parts = [(part, _read(part)) for part in form.ordered]
    except OverflowError:
        raise too_many from None
    if sum(len(items) for _, items in parts) > limits.MAX_BATCH_ENTRIES:
        raise too_many
    manifest = iter(parse_manifest(form.fields.get(MANIFEST_PART), len(form.files)))
    # The files' owner: the key's user, else the user_id part (400 only if a file needs one).
    owner = functools.cache(lambda: form_user(form, key_user))
    budget = inflate_budget()
    urls = url_budget()
    values = session_values()
    entries: list[BatchEntry] = []
    for part, items in parts:
        for item in items:
            if isinstance(part, FilePart):
                file = file_entry(part, next(manifest), owner(), stores.objects, budget)
                entries.append(file.tagged(_file_kind))
            elif part.name == Kind.SESSION:
                entries.append(_session_entry(item, key_user, stores, values).tagged(_session_kind))
            else:
                entries.append(_presign_entry(item, owner, stores, urls).tagged(_presign_kind))
    if not entries:
        raise unprocessable(
            ErrorCode.NO_ENTRIES, "the request has no file, session or presign entry"
        )
    return {"results": stores.pool.run_batch(entries)}


def _file_kind(result: UploadResultJson) -> BatchFileResultJson:
    return {"kind": Kind.FILE, **result}


def _session_kind(result: SessionResultJson) -> BatchSessionResultJson:
    return {"kind": Kind.SESSION, **result}


def _presign_kind(result: PresignResultJson) -> BatchPresignResultJson:
    return {"kind": Kind.PRESIGN, **result}


@dataclass(frozen=True)
class _Unreadable:
    """A JSON part that holds no entries it could answer for: one rejected entry."""

    error: str


@dataclass(frozen=True)
class _Ask:
    """One entry of a presign part's ``files`` list, not yet checked."""

    where: str
    raw: object


def _read(part: FilePart | JsonPart) -> list[object]:
    """The entries a part holds: the part itself, sessions, or presign asks."""
    if isinstance(part, FilePart):
        return [part]
    if part.name == Kind.SESSION:
        # Split unparsed: each session is sized before it is parsed (sessions.text_entry).
        return list(split_part(part.data))
    try:
        value = json.loads(part.data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError):
        return [_Unreadable("invalid_json: presign part is not UTF-8 JSON")]
    files = value.get("files") if isinstance(value, dict) else None
    if not isinstance(files, list) or not files:
        return [_Unreadable("invalid_body: presign part needs 'files': [...]")]
    return [_Ask(f"files[{index}]", raw) for index, raw in enumerate(files)]


def _session_entry(
    item: object, key_user: str | None, stores: BatchStores, values: Budget
) -> Entry[SessionResultJson]:
    assert isinstance(item, bytes)  # _read gives a session part's texts only
    return text_entry(item, key_user, stores.sessions, values)


def _presign_entry(
    item: object, owner: Callable[[], str], stores: BatchStores, urls: Budget
) -> Entry[PresignResultJson]:
    if not isinstance(item, _Ask):
        error = item.error if isinstance(item, _Unreadable) else "invalid_body: not an entry"
        return _rejected_presign(None, error)
    checked = check_file(item.where, item.raw)
    if isinstance(checked, str):
        name = item.raw.get("filename") if isinstance(item.raw, dict) else None
        filename = name if isinstance(name, str) else None
        return _rejected_presign(filename, f"invalid_body: {checked}")
    return presign_entry(
        checked,
        owner(),
        stores.objects,
        stores.presign_seconds,
        now=stores.now,
        urls=urls,
    )


def _rejected_presign(filename: str | None, error: str) -> Entry[PresignResultJson]:
    return Entry({"filename": filename, "key": None, "status": Status.REJECTED, "error": error})
