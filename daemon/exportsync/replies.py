"""The API's answer to `POST /batch` as it came off the network, narrowed to the wire's types.

`Api.batch` hands over the answer's JSON objects unchecked; `by_kind` splits them per kind of
entry and narrows each to its route's result type (`exportsync_wire.shapes`), so the code that
applies them reads typed fields. Before any answer is applied, a count that does not match the
request is retried like a 5xx and a status the contract does not name is a protocol error of the
whole request (CONTRACT §3a). Then, field by field: what the daemon acts on is kept only when it
has its type (a presigned URL, its headers, a multipart upload's parts and completion; without
them the item goes again later); what it only passes along is taken when it has its type and is
otherwise left empty, so a sparse answer is applied as it always was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from exportsync.errors import ProtocolError, TransientError
from exportsync_wire import (
    CompleteJson,
    Kind,
    PartJson,
    PresignResultJson,
    SessionResultJson,
    Status,
    UploadResultJson,
)

__all__ = ["Answered", "Raw", "by_kind"]

_Result = TypeVar("_Result", UploadResultJson, SessionResultJson, PresignResultJson)

# One result object of the answer, as parsed from its JSON and nothing more.
Raw = Mapping[str, object]


@dataclass(frozen=True)
class Answered:
    """A /batch answer's results per kind of entry, each in request order."""

    files: list[UploadResultJson]
    sessions: list[SessionResultJson]
    presign: list[PresignResultJson]


def by_kind(results: Sequence[Raw], *, files: int, sessions: int, presign: int) -> Answered:
    """The results of a request with that many entries of each kind, narrowed; TransientError
    when the counts do not match it, ProtocolError for a status the contract does not name."""
    expected = {Kind.FILE: files, Kind.SESSION: sessions, Kind.PRESIGN: presign}
    found = {kind: [r for r in results if r.get("kind") == kind] for kind in Kind}
    if any(len(found[kind]) != n for kind, n in expected.items()):
        raise TransientError(
            f"the API answered {len(results)} results that do not match the request"
        )
    unknown = sorted({repr(r.get("status")) for r in results} - _NAMED_STATUSES)
    if unknown:
        raise ProtocolError(f"the API answered a status the contract does not name: {unknown[0]}")
    return Answered(
        files=[_file(r) for r in found[Kind.FILE]],
        sessions=[_session(r) for r in found[Kind.SESSION]],
        presign=[_presign(r) for r in found[Kind.PRESIGN]],
    )


# `repr` of every status the contract names, so a non-string status is unknown too.
_NAMED_STATUSES = frozenset(repr(str(s)) for s in Status)


def _file(raw: Raw) -> UploadResultJson:
    out: UploadResultJson = {
        "filename": _text(raw.get("filename")),
        "key": _text(raw.get("key")),
        "sha256": _text(raw.get("sha256")) or "",
        "size": _whole(raw.get("size")) or 0,
        "status": _status(raw),
    }
    return _with_error(out, raw)


def _session(raw: Raw) -> SessionResultJson:
    out: SessionResultJson = {
        "user_id": _text(raw.get("user_id")),
        "timestamp": _text(raw.get("timestamp")),
        "status": _status(raw),
    }
    return _with_error(out, raw)


def _presign(raw: Raw) -> PresignResultJson:
    out: PresignResultJson = {
        "filename": _text(raw.get("filename")),
        "key": _text(raw.get("key")),
        "status": _status(raw),
    }
    _with_error(out, raw)
    if (url := _text(raw.get("url"))) is not None:
        out["url"] = url
    if raw.get("method") == "PUT":
        out["method"] = "PUT"
    if (headers := _headers(raw.get("headers"))) is not None:
        out["headers"] = headers
    if (expires_at := _text(raw.get("expires_at"))) is not None:
        out["expires_at"] = expires_at
    if (upload_id := _text(raw.get("upload_id"))) is not None:
        out["upload_id"] = upload_id
    if (part_size := _whole(raw.get("part_size"))) is not None:
        out["part_size"] = part_size
    if (parts := _parts(raw.get("parts"))) is not None:
        out["parts"] = parts
    if (complete := _complete(raw.get("complete"))) is not None:
        out["complete"] = complete
    return out


def _parts(value: object) -> list[PartJson] | None:
    """Every part of a multipart answer, or None when any of them is malformed."""
    if not isinstance(value, list):
        return None
    parts: list[PartJson] = []
    for part in value:
        if not isinstance(part, Mapping):
            return None
        number, url = _whole(part.get("number")), _text(part.get("url"))
        if number is None or url is None:
            return None
        parts.append({"number": number, "url": url, "headers": _headers(part.get("headers")) or {}})
    return parts


def _complete(value: object) -> CompleteJson | None:
    if not isinstance(value, Mapping) or (url := _text(value.get("url"))) is None:
        return None
    complete: CompleteJson = {"url": url, "method": "POST"}  # the daemon always POSTs it
    if (headers := _headers(value.get("headers"))) is not None:
        complete["headers"] = headers
    return complete


def _status(raw: Raw) -> Status:
    return Status(str(raw["status"]))  # by_kind let no other status through


def _with_error(out: _Result, raw: Raw) -> _Result:
    """`out` with the answer's error, when it gives one."""
    if error := raw.get("error"):
        out["error"] = str(error)
    return out


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _headers(value: object) -> dict[str, str] | None:
    if not isinstance(value, Mapping):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None
    return dict(value)
