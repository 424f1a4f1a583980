"""``multipart/form-data`` bodies parsed with the ``multipart`` package, within fixed caps."""

from __future__ import annotations

from dataclasses import dataclass, field

import multipart

from exportsync_wire import ErrorCode, Kind, limits
from exportsync_wire.batch import MANIFEST_PART, USER_PART

from .errors import ApiError, bad_request

__all__ = ["JSON_PARTS", "FilePart", "Form", "JsonPart", "parse_form"]

MAX_PARTS = limits.MAX_BATCH_ENTRIES + 10  # a part per entry, plus the text parts
MAX_HEADER_SIZE = 2048
MAX_HEADER_COUNT = 8
MAX_TEXT_BYTES = 1024 * 1024  # a manifest of 1,000 entries fits easily
_TEXT_FIELDS = (MANIFEST_PART, USER_PART)
# Parts of POST /batch holding JSON entries (sessions, presign asks).
JSON_PARTS = (Kind.SESSION, Kind.PRESIGN)


@dataclass(frozen=True)
class FilePart:
    filename: str | None
    data: bytes


@dataclass(frozen=True)
class JsonPart:
    name: str
    data: bytes


@dataclass
class Form:
    files: list[FilePart] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    # The file and JSON parts in request order (POST /batch answers in that order).
    ordered: list[FilePart | JsonPart] = field(default_factory=list)


def parse_form(body: bytes, content_type: str | None) -> Form:
    """Parse ``body``; raise :class:`ApiError` 400/415 for anything malformed or over a cap."""
    boundary = _boundary(content_type)
    form = Form()
    try:
        parser = multipart.PushMultipartParser(
            boundary,
            content_length=len(body),
            max_header_size=MAX_HEADER_SIZE,
            max_header_count=MAX_HEADER_COUNT,
            max_segment_count=MAX_PARTS,
        )
        with parser:
            name: str | None = None
            filename: str | None = None
            chunks: list[bytes] = []
            events = [*parser.parse(body), *parser.parse(b"")]
            for event in events:
                if isinstance(event, multipart.MultipartSegment):
                    name, filename, chunks = event.name, event.filename, []
                elif event is None:
                    _add_part(form, name or "", filename, b"".join(chunks))
                else:
                    chunks.append(bytes(event))
    except multipart.MultipartError as exc:
        raise bad_request(ErrorCode.MALFORMED_MULTIPART, str(exc)) from None
    return form


def _boundary(content_type: str | None) -> str:
    if not content_type:
        raise ApiError(
            415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be multipart/form-data"
        )
    mime, options = multipart.parse_options_header(content_type)
    if mime != "multipart/form-data":
        raise ApiError(
            415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be multipart/form-data"
        )
    boundary = options.get("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > 200:
        raise bad_request(ErrorCode.MALFORMED_MULTIPART, "Content-Type has no valid boundary")
    return boundary


def _add_part(form: Form, name: str, filename: str | None, data: bytes) -> None:
    if name == "file":
        part = FilePart(filename=filename, data=data)
        form.files.append(part)
        form.ordered.append(part)
        return
    if name in JSON_PARTS:
        form.ordered.append(JsonPart(name, data))
        return
    if name not in _TEXT_FIELDS:
        return  # unknown parts are ignored (they still count against MAX_PARTS)
    if name in form.fields:
        raise bad_request(ErrorCode.MALFORMED_MULTIPART, f"duplicate part {name!r}")
    if len(data) > MAX_TEXT_BYTES:
        raise bad_request(ErrorCode.MALFORMED_MULTIPART, f"part {name!r} is too large")
    try:
        form.fields[name] = data.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(ErrorCode.MALFORMED_MULTIPART, f"part {name!r} is not UTF-8") from None
