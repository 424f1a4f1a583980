"""The HTTP side of delivery: the exportsync API behind its gateway, and presigned S3 PUTs.

The API itself is described in docs/api.md; its paths, limits and statuses come from
``exportsync_wire``.

`Api` is the boundary the delivery step talks to; `HttpApi` is the real one (requests). Every
failure comes out as a `DeliveryError` subclass that says whether and how to retry; `classify` is
the pure function that turns a gateway or Lambda answer into one.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

import requests
import urllib3

from exportsync import __version__
from exportsync.errors import (
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
from exportsync_wire import PresignFile, PresignRequestJson, routes

__all__ = [
    "Api",
    "HttpApi",
    "PresignFile",
    "UploadFile",
    "classify",
]


@dataclass(frozen=True)
class UploadFile:
    """One CSV file sent inline in a multipart `POST /upload`."""

    filename: str
    data: bytes
    sha256: str


class Api(Protocol):
    """The exportsync API as the delivery step sees it. Each call is one request on the quota."""

    def post_sessions(self, sessions: Sequence[bytes]) -> list[dict[str, Any]]:
        """POST /session with already-encoded session objects; the per-session results."""
        ...

    def upload(self, files: Sequence[UploadFile]) -> list[dict[str, Any]]:
        """POST /upload (multipart, with manifest); the per-file results."""
        ...

    def presign(self, files: Sequence[PresignFile]) -> list[dict[str, Any]]:
        """POST /presign; the per-file results (`upload` with url and headers, or `duplicate`)."""
        ...

    def put_presigned(
        self, url: str, headers: Mapping[str, str], body: IO[bytes] | Iterable[bytes]
    ) -> None:
        """PUT bytes to a presigned S3 URL (not counted against the usage plan)."""
        ...


def classify(status: int, body: bytes, location: str | None = None) -> DeliveryError | None:
    """The error an HTTP answer stands for, or None for a 2xx."""
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return Redirected(
            f"the API answered {status}, a redirect to {_where(location)}; redirects are never"
            " followed (the API key would go along): check api.url",
            status=status,
        )
    message = _message(body) or f"HTTP {status}"
    if status == 429:
        # The gateway tells the two 429s apart only by their message.
        if "limit exceeded" in message.lower():
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
        self._session = session or requests.Session()
        self._session.headers["x-api-key"] = api_key
        self._session.headers["User-Agent"] = f"exportsync/{__version__}"
        # Presigned PUTs go to S3 with their own signature: never with the API key.
        self._s3 = requests.Session()
        self._s3.headers["User-Agent"] = f"exportsync/{__version__}"

    def __repr__(self) -> str:
        return f"HttpApi({self._base!r})"

    def close(self) -> None:
        self._session.close()
        self._s3.close()

    def post_sessions(self, sessions: Sequence[bytes]) -> list[dict[str, Any]]:
        body = b'{"sessions":[' + b",".join(sessions) + b"]}"
        response = self._post(
            routes.SESSION, data=body, headers={"Content-Type": "application/json"}
        )
        return _results(response, len(sessions))

    def upload(self, files: Sequence[UploadFile]) -> list[dict[str, Any]]:
        manifest = [
            {"filename": f.filename, "sha256": f.sha256, "size": len(f.data)} for f in files
        ]
        fields: dict[str, str] = {"manifest": json.dumps(manifest)}
        if self._user_id:
            fields["user_id"] = self._user_id
        parts = [("file", (f.filename, f.data, "text/csv")) for f in files]
        response = self._post(routes.UPLOAD, data=fields, files=parts)
        return _results(response, len(files))

    def presign(self, files: Sequence[PresignFile]) -> list[dict[str, Any]]:
        doc: PresignRequestJson = {"files": [f.to_json() for f in files]}
        response = self._post(
            routes.PRESIGN, data=json.dumps(doc), headers={"Content-Type": "application/json"}
        )
        return _results(response, len(files))

    def put_presigned(
        self, url: str, headers: Mapping[str, str], body: IO[bytes] | Iterable[bytes]
    ) -> None:
        # requests would take a list or tuple for form fields, not for chunks of the body.
        data = b"".join(body) if isinstance(body, list | tuple) else body
        try:
            response = self._s3.put(
                url, data=data, headers=dict(headers), timeout=self._timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise TransientError(f"upload to storage failed: {type(exc).__name__}") from exc
        if response.status_code >= 300:
            text = response.content[:300].decode("utf-8", "replace")
            if response.status_code >= 500 or response.status_code == 403:
                # 403 here is an expired URL: ask for a new one.
                raise TransientError(
                    f"storage answered {response.status_code}", status=response.status_code
                )
            raise PermanentError(
                f"storage refused the upload ({response.status_code}): {text}",
                status=response.status_code,
            )

    def _post(self, route: str, **kwargs: Any) -> requests.Response:
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


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when no HTTP request can have reached the server: DNS, refused, certificate refused.

    Any other TLS error may come after the request was sent (a bad record while the answer is
    read); the gateway may have counted that request, so it must not be given back.
    """
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


def _results(response: requests.Response, expected: int) -> list[dict[str, Any]]:
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
