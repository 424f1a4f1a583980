"""In-memory stand-ins for the storage Protocols (unit and property tests only)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from exportsync_api.stores import PutOutcome
from exportsync_wire import Status

__all__ = ["MemoryObjectStore", "MemorySessionStore"]


class MemoryObjectStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: list[str] = []  # keys of multipart uploads started
        self.records: dict[str, str] = {}  # object key -> its upload record, as JSON
        self.put_keys: set[str] = set()  # keys stored whole (put_if_absent)
        self.signed: list[dict[str, Any]] = []  # what each presigned URL signs

    def put_if_absent(self, key: str, data: bytes, sha256_hex: str) -> PutOutcome:
        if key in self.objects:
            return Status.DUPLICATE
        self.objects[key] = data
        self.put_keys.add(key)
        return Status.STORED

    def exists(self, key: str) -> bool:
        return key in self.objects

    def stored_etag(self, key: str) -> str | None:
        """A multipart-looking ETag for an object at a key an upload began for, not PUT whole."""
        if key not in self.objects:
            return None
        digest = hashlib.md5(self.objects[key]).hexdigest()  # noqa: S324 -- S3's ETag is an MD5
        return f'"{digest}-1"' if key in self.uploads and key not in self.put_keys else digest

    def presign_put(self, key: str, sha256_hex: str, size: int, expires_in: int) -> str:
        return f"https://bucket.example/{key}?expires={expires_in}"

    def start_multipart(self, key: str) -> str:
        self.uploads.append(key)
        return f"upload-{len(self.uploads)}"

    def presign_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        length: int,
        sha256_hex: str,
        *,
        expires_in: int,
    ) -> str:
        self.signed.append(
            {"part": number, "length": length, "sha256": sha256_hex, "expires_in": expires_in}
        )
        return f"https://bucket.example/{key}?uploadId={upload_id}&partNumber={number}"

    def presign_complete(
        self, key: str, upload_id: str, composite_b64: str, size: int, expires_in: int
    ) -> str:
        self.signed.append(
            {
                "complete": upload_id,
                "composite": composite_b64,
                "size": size,
                "expires_in": expires_in,
            }
        )
        return f"https://bucket.example/{key}?uploadId={upload_id}"

    def load_record(self, key: str) -> dict[str, Any] | None:
        raw = self.records.get(key)
        return None if raw is None else dict(json.loads(raw))

    def save_record(self, key: str, record: Mapping[str, Any]) -> None:
        self.records[key] = json.dumps(dict(record))

    def object_sha256(self, key: str) -> tuple[str, str | None] | None:
        data = self.objects.get(key)
        return None if data is None else (hashlib.sha256(data).hexdigest(), None)

    def delete_version(self, key: str, version_id: str | None) -> None:
        self.objects.pop(key, None)


class MemorySessionStore:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], tuple[Mapping[str, Any], str]] = {}

    def put_unless_same(self, item: Mapping[str, Any], content_hash: str) -> PutOutcome:
        key = (item["user_id"]["S"], item["timestamp"]["S"])
        if key in self.items and self.items[key][1] == content_hash:
            return Status.DUPLICATE
        self.items[key] = (item, content_hash)
        return Status.STORED
