"""A scripted stand-in for the exportsync API, for synchronous tests of the delivery step."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from exportsync.client import PresignFile, UploadFile
from exportsync.errors import DeliveryError

__all__ = ["Call", "FakeApi", "checksum_b64"]

Script = DeliveryError | Callable[["Call"], list[dict[str, Any]] | None] | None


def checksum_b64(sha256_hex: str) -> str:
    """What S3 takes in x-amz-checksum-sha256: the base64 of the raw digest, not hex."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


@dataclass
class Call:
    route: str
    payload: list[Any]


@dataclass
class FakeApi:
    """Answers like a healthy server unless `script` says otherwise, one entry per request.

    A script entry is a DeliveryError to raise, a function of the call returning the results
    (or None for the default), or None for the default answer.
    """

    script: list[Script] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    puts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    put_errors: list[DeliveryError] = field(default_factory=list)
    stored: set[str] = field(default_factory=set)
    # Called once, halfway through the next presigned PUT's body (like S3, nothing is checked).
    during_put: Callable[[], None] | None = None

    def _answer(
        self, call: Call, default: Callable[[], list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        self.calls.append(call)
        entry = self.script.pop(0) if self.script else None
        if isinstance(entry, DeliveryError):
            raise entry
        if entry is not None:
            custom = entry(call)
            if custom is not None:
                return custom
        return default()

    def post_sessions(self, sessions: Sequence[bytes]) -> list[dict[str, Any]]:
        call = Call("session", list(sessions))

        def default() -> list[dict[str, Any]]:
            results = []
            for body in sessions:
                digest = hashlib.sha256(body).hexdigest()
                status = "duplicate" if digest in self.stored else "stored"
                self.stored.add(digest)
                results.append({"status": status})
            return results

        return self._answer(call, default)

    def upload(self, files: Sequence[UploadFile]) -> list[dict[str, Any]]:
        call = Call("upload", list(files))

        def default() -> list[dict[str, Any]]:
            results = []
            for f in files:
                key = f"uploads/u/{f.sha256}/{f.filename}"
                status = "duplicate" if key in self.stored else "stored"
                self.stored.add(key)
                results.append({"filename": f.filename, "key": key, "status": status})
            return results

        return self._answer(call, default)

    def presign(self, files: Sequence[PresignFile]) -> list[dict[str, Any]]:
        call = Call("presign", list(files))

        def default() -> list[dict[str, Any]]:
            return [
                {
                    "filename": f.filename,
                    "key": f"uploads/u/{f.sha256}/{f.filename}",
                    "status": "upload",
                    "url": f"http://127.0.0.1:1/put/{f.sha256}",
                    "method": "PUT",
                    "headers": {"x-amz-checksum-sha256": checksum_b64(f.sha256)},
                }
                for f in files
            ]

        return self._answer(call, default)

    def put_presigned(
        self, url: str, headers: Mapping[str, str], body: IO[bytes] | Iterable[bytes]
    ) -> None:
        if hasattr(body, "read"):
            data = b""
            if self.during_put is not None:
                # Half the body leaves, then the hook runs (a writer changes the file mid-PUT).
                data = body.read(max(1, len(body) // 2))  # type: ignore[arg-type]
                hook, self.during_put = self.during_put, None
                hook()
            while chunk := body.read():
                data += chunk
        else:
            data = b"".join(body)
        if self.put_errors:
            raise self.put_errors.pop(0)
        self.puts.append((url, dict(headers), data))

    @property
    def routes(self) -> list[str]:
        return [c.route for c in self.calls]
