"""The HTTP side of delivery: `POST /batch` behind the gateway, and presigned S3 PUTs and
multipart completions (which the usage plan does not count).

The API itself is described in docs/api.md; its paths, limits, part names and statuses come from
``exportsync_wire``.

`Api` is the boundary the delivery step talks to; `HttpApi` is the real one (requests, imported
with the first request: an idle daemon with nothing to send never loads it). Every
failure comes out as a `DeliveryError` subclass that says whether and how to retry; `classify` is
the pure function that turns a gateway or Lambda answer into one.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol
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
    import requests

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
    """The real API over HTTPS (plain HTTP only on loopback; config validation sees to that)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        user_id: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._user_id = user_id
        self._api_key = api_key
        # Made at the first request (requests is a large import an idle daemon does without).
        self._given = session
        self._sessions: tuple[requests.Session, requests.Session] | None = None

    def __repr__(self) -> str:
        return f"HttpApi({self._base!r})"

    def _http(self) -> tuple[requests.Session, requests.Session]:
        """The API's session (with the key) and S3's (presigned PUTs carry their own signature:
        never the API key)."""
        if self._sessions is None:
            import requests  # noqa: PLC0415 -- at first use, see the module's docstring

            api = self._given or requests.Session()
            api.headers["x-api-key"] = self._api_key
            api.headers["User-Agent"] = f"exportsync/{__version__}"
            s3 = requests.Session()
            s3.headers["User-Agent"] = f"exportsync/{__version__}"
            self._sessions = (api, s3)
        return self._sessions

    @property
    def _session(self) -> requests.Session:
        return self._http()[0]

    @property
    def _s3(self) -> requests.Session:
        return self._http()[1]

    def close(self) -> None:
        if self._sessions is not None:
            for session in self._sessions:
                session.close()

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
        response = self._post(routes.BATCH, files=fields)
        return _results(response, request.entries)

    def complete_multipart(
        self, url: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        import requests  # noqa: PLC0415 -- loaded by _http() already

        sent = {"Content-Type": "application/xml", **(headers or {})}
        try:
            response = self._s3.post(url, data=body, headers=sent, timeout=self._timeout)
        except requests.RequestException as exc:
            raise TransientError(f"completing the upload failed: {type(exc).__name__}") from exc
        # S3 may answer 200 with an <Error> body when completion fails late.
        if response.status_code >= 300 or b"<Error>" in response.content[:512]:
            _raise_storage(response, "completion")

    def put_presigned(
        self, url: str, headers: Mapping[str, str], body: IO[bytes] | Iterable[bytes]
    ) -> str | None:
        import requests  # noqa: PLC0415 -- loaded by _http() already

        # requests would take a list or tuple for form fields, not for chunks of the body.
        data = b"".join(body) if isinstance(body, list | tuple) else body
        try:
            response = self._s3.put(
                url, data=data, headers=dict(headers), timeout=self._timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise TransientError(f"upload to storage failed: {type(exc).__name__}") from exc
        if response.status_code >= 300:
            _raise_storage(response, "upload")
        return response.headers.get("ETag")

    def _post(self, route: str, **kwargs: Any) -> requests.Response:
        import requests  # noqa: PLC0415 -- loaded by _http() already

        try:
            # Never follow a redirect: requests would send x-api-key along to any host.
            response = self._session.post(
                self._base + route, timeout=self._timeout, allow_redirects=False, **kwargs
            )
        except requests.ConnectTimeout as exc:
            raise Unreachable(f"{route}: no connection within {self._timeout:g}s") from exc
        except requests.Timeout as exc:
            raise TransientError(f"{route}: no answer within {self._timeout:g}s") from exc
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                raise Unreachable(f"{route}: cannot connect ({_reason(exc)})") from exc
            raise TransientError(f"{route}: connection failed ({type(exc).__name__})") from exc
        except requests.RequestException as exc:
            # The message may quote the URL, never the headers: the key stays out of it.
            raise TransientError(f"{route}: connection failed ({type(exc).__name__})") from exc
        error = classify(response.status_code, response.content, response.headers.get("Location"))
        if error is not None:
            raise error
        return response


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


def _raise_storage(response: requests.Response, what: str) -> None:
    text = response.content[:300].decode("utf-8", "replace")
    code = _s3_error_code(response.content)
    if response.status_code >= 500 or response.status_code in (403, 200) or code in _BODY_REFUSALS:
        # 403 is an expired URL (ask for a new one); a 200 with an error body is S3's late 5xx.
        # A body refused as torn or short is sent again too (delivery checks the file first).
        raise TransientError(
            f"storage answered {response.status_code} {code or ''}".rstrip(),
            status=response.status_code,
        )
    raise PermanentError(
        f"storage refused the {what} ({response.status_code}): {text}",
        status=response.status_code,
    )


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when no HTTP request can have reached the server: DNS, refused, certificate refused.

    Any other TLS error may come after the request was sent (a bad record while the answer is
    read); the gateway may have counted that request, so it must not be given back.
    """
    import requests  # noqa: PLC0415 -- loaded by _http() already
    import urllib3  # noqa: PLC0415

    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", cause)
    if isinstance(exc, requests.exceptions.SSLError):
        inner = reason.args[0] if isinstance(reason, Exception) and reason.args else reason
        # Certificate checks happen in the handshake, before a byte of the request is sent.
        return isinstance(inner, ssl.SSLCertVerificationError)
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _reason(exc: requests.ConnectionError) -> str:
    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", cause)
    return type(reason).__name__ if reason is not None else type(exc).__name__


def _results(response: requests.Response, expected: int) -> list[dict[str, object]]:
    try:
        doc = response.json()
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
