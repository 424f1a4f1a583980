"""In-memory stand-ins for the storage Protocols (unit and property tests only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exportsync_api.stores import PutOutcome
from exportsync_wire import Status

__all__ = ["MemoryObjectStore", "MemorySessionStore"]


class MemoryObjectStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: list[str] = []  # keys of multipart uploads started

    def put_if_absent(self, key: str, data: bytes, sha256_hex: str) -> PutOutcome:
        if key in self.objects:
            return Status.DUPLICATE
        self.objects[key] = data
        return Status.STORED

    def exists(self, key: str) -> bool:
        return key in self.objects

    def presign_put(self, key: str, sha256_hex: str, size: int, expires_in: int) -> str:
        return f"https://bucket.example/{key}?expires={expires_in}"

    def start_multipart(self, key: str) -> str:
        self.uploads.append(key)
        return f"upload-{len(self.uploads)}"

    def presign_part(
        self, key: str, upload_id: str, number: int, length: int, expires_in: int
    ) -> str:
        return f"https://bucket.example/{key}?uploadId={upload_id}&partNumber={number}"

    def presign_complete(self, key: str, upload_id: str, expires_in: int) -> str:
        return f"https://bucket.example/{key}?uploadId={upload_id}"


class MemorySessionStore:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], tuple[Mapping[str, Any], str]] = {}

    def put_unless_same(self, item: Mapping[str, Any], content_hash: str) -> PutOutcome:
        key = (item["user_id"]["S"], item["timestamp"]["S"])
        if key in self.items and self.items[key][1] == content_hash:
            return Status.DUPLICATE
        self.items[key] = (item, content_hash)
        return Status.STORED
