"""A scripted stand-in for the exportsync API, for synchronous tests of the delivery step."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from exportsync.client import BatchFile, BatchRequest, PresignFile
from exportsync.errors import DeliveryError
from exportsync_wire.parts import plan_parts

__all__ = ["Call", "FakeApi", "checksum_b64"]


def checksum_b64(sha256_hex: str) -> str:
    """What S3 takes in x-amz-checksum-sha256: the base64 of the raw digest, not hex."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


Script = DeliveryError | Callable[["Call"], list[dict[str, Any]] | None] | None


@dataclass
class Call:
    """One POST /batch as the fake saw it."""

    request: BatchRequest

    @property
    def route(self) -> str:
        return "batch"

    @property
    def files(self) -> list[BatchFile]:
        return list(self.request.files)

    @property
    def sessions(self) -> list[bytes]:
        return list(self.request.sessions)

    @property
    def presign(self) -> list[PresignFile]:
        return list(self.request.presign)


@dataclass
class FakeApi:
    """Answers like a healthy server unless `script` says otherwise, one entry per request.

    A script entry is a DeliveryError to raise, a function of the call returning the results
    (or None for the default), or None for the default answer. Multipart asks are answered with
    part URLs `http://127.0.0.1:1/part/{sha}/{n}`; `puts` records every PUT, `completions` every
    completion body.
    """

    script: list[Script] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    puts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    put_errors: list[DeliveryError | None] = field(default_factory=list)  # None: that PUT works
    completions: list[tuple[str, bytes]] = field(default_factory=list)
    completion_headers: list[dict[str, str]] = field(default_factory=list)
    stored: set[str] = field(default_factory=set)
    part_size: int = 16 * 1024**2
    # Called once, halfway through the next presigned PUT's body (like S3, nothing is checked).
    during_put: Callable[[], None] | None = None

    def batch(self, request: BatchRequest) -> list[dict[str, Any]]:
        call = Call(request)
        self.calls.append(call)
        entry = self.script.pop(0) if self.script else None
        if isinstance(entry, DeliveryError):
            raise entry
        if entry is not None:
            custom = entry(call)
            if custom is not None:
                return custom
        return self.default_results(request)

    def default_results(self, request: BatchRequest) -> list[dict[str, Any]]:
        results = [self._file(f) for f in request.files]
        results += [self._session(body) for body in request.sessions]
        results += [self._presign(p) for p in request.presign]
        return results

    def _file(self, f: BatchFile) -> dict[str, Any]:
        key = f"uploads/u/{f.sha256}/{f.filename}"
        status = "duplicate" if key in self.stored else "stored"
        self.stored.add(key)
        return {"kind": "file", "filename": f.filename, "key": key, "status": status}

    def _session(self, body: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(body).hexdigest()
        status = "duplicate" if digest in self.stored else "stored"
        self.stored.add(digest)
        return {"kind": "session", "status": status}

    def _presign(self, p: PresignFile) -> dict[str, Any]:
        key = f"uploads/u/{p.sha256}/{p.filename}"
        if p.parts is None:
            return {
                "kind": "presign",
                "filename": p.filename,
                "key": key,
                "status": "upload",
                "url": f"http://127.0.0.1:1/put/{p.sha256}",
                "method": "PUT",
                "headers": {"x-amz-checksum-sha256": checksum_b64(p.sha256)},
            }
        plan = plan_parts(p.size, p.parts)
        part_size = plan.part_size
        digests = p.part_sha256 or ("",) * plan.count
        return {
            "kind": "presign",
            "filename": p.filename,
            "key": key,
            "status": "multipart",
            "upload_id": f"up-{p.sha256[:8]}",
            "part_size": part_size,
            "parts": [
                {
                    "number": n,
                    "url": f"http://127.0.0.1:1/part/{p.sha256}/{n}",
                    "headers": {"x-amz-checksum-sha256": digest},
                }
                for n, digest in enumerate(digests, 1)
            ],
            "complete": {
                "url": f"http://127.0.0.1:1/complete/{p.sha256}",
                "method": "POST",
                "headers": {"x-amz-mp-object-size": str(p.size)},
            },
        }

    def put_presigned(
        self, url: str, headers: Mapping[str, str], body: IO[bytes] | Iterable[bytes]
    ) -> str | None:
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
        error = self.put_errors.pop(0) if self.put_errors else None
        if error is not None:
            raise error
        self.puts.append((url, dict(headers), data))
        return '"' + hashlib.md5(data).hexdigest() + '"'  # noqa: S324 -- S3's ETag is an MD5

    def complete_multipart(
        self, url: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        self.completions.append((url, body))
        self.completion_headers.append(dict(headers or {}))

    @property
    def routes(self) -> list[str]:
        return [c.route for c in self.calls]
