"""The HTTP side of delivery: `POST /batch` behind the gateway, and presigned S3 PUTs and
multipart completions (which the usage plan does not count).

The API itself is described in docs/api.md; its paths, limits, part names and statuses come from
``exportsync_wire``.

`Api` is the boundary the delivery step talks to; `HttpApi` is the real one (urllib3 through
`transport`, imported with the first request: an idle daemon with nothing to send never loads
it). Every
failure comes out as a `DeliveryError` subclass that says whether and how to retry; `classify` is
the pure function that turns a gateway or Lambda answer into one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Literal, Protocol
from urllib.parse import urlsplit

from exportsync import __version__
from exportsync.errors import (
    REDIRECT_MARK,
    DeliveryError,
    Forbidden,
    PermanentError,
    QuotaExhausted,
    Redirected,
    RequestTooLarge,
    Throttled,
    TransientError,
    Unreachable,
)
from exportsync.transport import Body, Transport
from exportsync_wire import (
    GZIP,
    Kind,
    ManifestEntryJson,
    PresignFile,
    PresignRequestJson,
    gateway,
    routes,
)
from exportsync_wire.batch import MANIFEST_PART, USER_PART

if TYPE_CHECKING:
    from urllib3 import BaseHTTPResponse
    from urllib3.exceptions import MaxRetryError

__all__ = [
    "Api",
    "BatchFile",
    "BatchRequest",
    "HttpApi",
    "PresignFile",
    "classify",
    "completion_xml",
]


@dataclass(frozen=True)
class BatchFile:
    """One CSV inline in `POST /batch`: `data` as sent, `sha256` and `size` of the file itself."""

    filename: str
    data: bytes
    sha256: str
    size: int
    encoding: Literal["gzip"] | None = None  # GZIP

    def manifest_entry(self) -> ManifestEntryJson:
        doc: ManifestEntryJson = {
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
        }
        if self.encoding is not None:
            doc["encoding"] = self.encoding
        return doc


@dataclass(frozen=True)
class BatchRequest:
    """Everything one `POST /batch` carries: files, encoded session objects, presign asks."""

    files: Sequence[BatchFile] = ()
    sessions: Sequence[bytes] = ()
    presign: Sequence[PresignFile] = ()

    @property
    def entries(self) -> int:
        return len(self.files) + len(self.sessions) + len(self.presign)


class Api(Protocol):
    """The exportsync API as the delivery step sees it. Only `batch` counts against the quota."""

    def batch(self, request: BatchRequest) -> list[dict[str, object]]:
        """POST /batch; one JSON object per entry, each with its `kind`, as the API sent them
        (`replies.by_kind` narrows them)."""
        ...

    def put_presigned(
        self, url: str, headers: Mapping[str, str], body: IO[bytes] | Iterable[bytes]
    ) -> str | None:
        """PUT bytes to a presigned S3 URL (not counted against the usage plan); the ETag."""
        ...

    def complete_multipart(
        self, url: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """POST the completion XML to a presigned CompleteMultipartUpload URL (not counted),
        with the headers it signs (the parts' composite sha256, the size)."""
        ...


def completion_xml(
    etags: Sequence[tuple[int, str]], checksums: Mapping[int, str] | None = None
) -> bytes:
    """The CompleteMultipartUpload body for (part number, ETag) pairs, with each part's
    base64 sha256 where given (an upload created with SHA256 wants every part's)."""
    checksums = checksums or {}
    parts = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{_xml_escape(etag)}</ETag>"
        + (
            f"<ChecksumSHA256>{_xml_escape(checksums[n])}</ChecksumSHA256>"
            if n in checksums
            else ""
        )
        + "</Part>"
        for n, etag in sorted(etags)
    )
    return f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()


def _xml_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def classify(status: int, body: bytes, location: str | None = None) -> DeliveryError | None:
    """The error an HTTP answer stands for, or None for a 2xx."""
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return Redirected(
            f"the API answered {status}, {REDIRECT_MARK} {_where(location)}; redirects are never"
            " followed (the API key would go along): check api.url",
            status=status,
        )
    message = _message(body) or f"HTTP {status}"
    if status == gateway.LIMIT_EXCEEDED.status:
        # The gateway tells its two 429s apart only by their message.
        if gateway.LIMIT_EXCEEDED.message.lower() in message.lower():
            return QuotaExhausted(message, status=status)
        return Throttled(message, status=status)
    if status == 403:
        return Forbidden(message, status=status)
    if status == 413:
        return RequestTooLarge(message, status=status)
    if status in (408,) or status >= 500:
        return TransientError(message, status=status)
    return PermanentError(message, status=status)


def _where(location: str | None) -> str:
    """Scheme, host and path of a redirect target: its query may hold anything."""
    if not location:
        return "nowhere"
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else parts.path


def _message(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body[:200].decode("utf-8", "replace").strip()
        return text or None
    if isinstance(doc, dict):
        error = doc.get("error")
        if isinstance(error, dict):
            code, msg = error.get("code"), error.get("message")
            if isinstance(msg, str):
                return f"{code}: {msg}" if isinstance(code, str) else msg
        msg = doc.get("message") or doc.get("Message")
        if isinstance(msg, str):
            return msg
    return None


class HttpApi:
    """The real API over HTTPS (plain HTTP only on loopback; config validation sees to that).

    `transport` replaces the default one (certifi's CA bundle, the environment's proxies)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        user_id: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._user_id = user_id
        self._api_key = api_key
        # One transport for the API and S3: a pool per host, the key only in the API's headers.
        self._transport = transport or Transport()

    def __repr__(self) -> str:
        return f"HttpApi({self._base!r})"

    def close(self) -> None:
        self._transport.close()

    def batch(self, request: BatchRequest) -> list[dict[str, object]]:
        fields: list[tuple[str, tuple[str | None, bytes, str]]] = []
        if request.files:
            manifest = json.dumps([f.manifest_entry() for f in request.files]).encode()
            fields.append((MANIFEST_PART, (None, manifest, "application/json")))
        if self._user_id:
            fields.append((USER_PART, (None, self._user_id.encode(), "text/plain")))
        for f in request.files:
            fields.append((Kind.FILE, (f.filename, f.data, _file_type(f))))
        if request.sessions:
            body = b"[" + b",".join(request.sessions) + b"]"
            fields.append((Kind.SESSION, (None, body, "application/json")))
        if request.presign:
            doc: PresignRequestJson = {"files": [p.to_json() for p in request.presign]}
            fields.append((Kind.PRESIGN, (None, json.dumps(doc).encode(), "application/json")))
        response = self._post(routes.BATCH, fields)
        return _results(response, request.entries)

    def complete_multipart(
        self, url: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        sent = {"Content-Type": "application/xml", **(headers or {})}
        response = self._storage("POST", url, sent, body, "completing the upload")
        # S3 may answer 200 with an <Error> body when completion fails late.
        if response.status >= 300 or b"<Error>" in response.data[:512]:
            _raise_storage(response, "completion")

    def put_presigned(
        self, url: str, headers: Mapping[str, str], body: IO[bytes] | Iterable[bytes]
    ) -> str | None:
        # Chunks given as a list are joined, so that their length goes as Content-Length.
        data = b"".join(body) if isinstance(body, list | tuple) else body
        response = self._storage("PUT", url, dict(headers), data, "upload to storage")
        if response.status >= 300:
            _raise_storage(response, "upload")
        etag: str | None = response.headers.get("ETag")
        return etag

    def _storage(
        self, method: str, url: str, headers: dict[str, str], body: Body, what: str
    ) -> BaseHTTPResponse:
        """A presigned S3 request: it carries its own signature, never the API key."""
        from urllib3.exceptions import HTTPError  # noqa: PLC0415 -- loaded by now

        sent = {**_COMMON_HEADERS, **headers}
        try:
            return self._transport.request(
                method, url, headers=sent, body=body, timeout=self._timeout
            )
        except (HTTPError, OSError) as exc:
            raise TransientError(f"{what} failed: {_name(exc)}") from exc

    def _post(
        self, route: str, fields: Sequence[tuple[str, tuple[str | None, bytes, str]]]
    ) -> BaseHTTPResponse:
        from urllib3.exceptions import (  # noqa: PLC0415 -- at first use, see the docstring
            ConnectTimeoutError,
            HTTPError,
            MaxRetryError,
            NewConnectionError,
            ReadTimeoutError,
        )

        body, content_type = _multipart(fields)
        headers = {**_COMMON_HEADERS, "x-api-key": self._api_key, "Content-Type": content_type}
        try:
            # Never a redirect followed (the transport's rule): x-api-key would go along.
            response = self._transport.request(
                "POST", self._base + route, headers=headers, body=body, timeout=self._timeout
            )
        except MaxRetryError as exc:
            reason = exc.reason
            if isinstance(reason, ConnectTimeoutError) and not isinstance(
                reason, NewConnectionError
            ):
                raise Unreachable(f"{route}: no connection within {self._timeout:g}s") from exc
            if _never_connected(exc):
                raise Unreachable(f"{route}: cannot connect ({_reason(exc)})") from exc
            raise TransientError(f"{route}: connection failed ({_name(exc)})") from exc
        except ReadTimeoutError as exc:
            raise TransientError(f"{route}: no answer within {self._timeout:g}s") from exc
        except (HTTPError, OSError) as exc:
            # The message may quote the URL, never the headers: the key stays out of it.
            raise TransientError(f"{route}: connection failed ({_name(exc)})") from exc
        error = classify(response.status, response.data, response.headers.get("Location"))
        if error is not None:
            raise error
        return response


_COMMON_HEADERS = {
    "User-Agent": f"exportsync/{__version__}",
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
}


def _multipart(
    fields: Sequence[tuple[str, tuple[str | None, bytes, str]]],
) -> tuple[bytes, str]:
    """multipart/form-data as requests' `files=` built it (with urllib3's own encoder)."""
    from urllib3.fields import RequestField  # noqa: PLC0415 -- at first use
    from urllib3.filepost import encode_multipart_formdata  # noqa: PLC0415

    parts = []
    for name, (filename, data, content_type) in fields:
        field = RequestField(name=name, data=data, filename=filename)
        field.make_multipart(content_type=content_type)
        parts.append(field)
    return encode_multipart_formdata(parts)


# S3's answers to bytes that did not arrive as signed: the file may be fine, the transfer was not.
_BODY_REFUSALS = frozenset(
    {"BadDigest", "XAmzContentSHA256Mismatch", "IncompleteBody", "RequestTimeout", "InvalidDigest"}
)
_S3_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


def _s3_error_code(body: bytes) -> str | None:
    """The <Code> of an S3 XML error body (a regex: the body is untrusted, keep it to one tag)."""
    match = _S3_CODE.search(body[:4096])
    return match.group(1).decode("ascii") if match else None


def _file_type(f: BatchFile) -> str:
    return "application/gzip" if f.encoding == GZIP else "text/csv"


def _raise_storage(response: BaseHTTPResponse, what: str) -> None:
    content = response.data
    text = content[:300].decode("utf-8", "replace")
    code = _s3_error_code(content)
    if response.status >= 500 or response.status in (403, 200) or code in _BODY_REFUSALS:
        # 403 is an expired URL (ask for a new one); a 200 with an error body is S3's late 5xx.
        # A body refused as torn or short is sent again too (delivery checks the file first).
        raise TransientError(
            f"storage answered {response.status} {code or ''}".rstrip(),
            status=response.status,
        )
    raise PermanentError(
        f"storage refused the {what} ({response.status}): {text}",
        status=response.status,
    )


def _never_connected(exc: MaxRetryError) -> bool:
    """True when no HTTP request can have reached the server: DNS, refused, certificate refused.

    Any other TLS error may come after the request was sent (a bad record while the answer is
    read); the gateway may have counted that request, so it must not be given back.
    """
    from urllib3.exceptions import NewConnectionError, SSLError  # noqa: PLC0415

    reason = exc.reason
    if isinstance(reason, SSLError):
        # Here, not at the top: ssl (with socket and selectors) is loaded by urllib3 at the first
        # request, and an idle daemon need not carry it.
        from ssl import SSLCertVerificationError  # noqa: PLC0415

        inner = reason.args[0] if reason.args else None
        # Certificate checks happen in the handshake, before a byte of the request is sent.
        return isinstance(inner, SSLCertVerificationError)
    return isinstance(reason, NewConnectionError)


def _reason(exc: MaxRetryError) -> str:
    return type(exc.reason).__name__ if exc.reason is not None else type(exc).__name__


def _name(exc: BaseException) -> str:
    """What failed, by the exception's name; for `MaxRetryError`, the name of its reason."""
    reason = getattr(exc, "reason", None)
    return type(reason).__name__ if isinstance(reason, BaseException) else type(exc).__name__


def _results(response: BaseHTTPResponse, expected: int) -> list[dict[str, object]]:
    try:
        doc = json.loads(response.data)
    except ValueError as exc:
        raise TransientError("the API answered 200 without a JSON body") from exc
    results = doc.get("results") if isinstance(doc, dict) else None
    if (
        not isinstance(results, list)
        or len(results) != expected
        or not all(isinstance(r, dict) for r in results)
    ):
        raise TransientError(f"the API answered 200 without {expected} results")
    return results
