"""Multipart uploads, presigned whole: how a file is cut into parts, and the answer that carries
every part URL and the completion URL, so the upload costs the one counted request.

Our caps (S3 allows 10,000 parts): at most ``MAX_PARTS_PER_FILE`` parts per file and
``MAX_PRESIGNED_URLS`` presigned URLs per request (a PUT is one, a multipart upload its parts and
its completion) keep the answer under Lambda's 6 MB response limit: a URL signed with session
credentials and a long filename is about 2.3 KB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exportsync_wire import Status, limits

from .budget import Budget

__all__ = [
    "DEFAULT_PART_BYTES",
    "MAX_OBJECT_BYTES",
    "MAX_PARTS_PER_FILE",
    "MAX_PART_BYTES",
    "MAX_PRESIGNED_URLS",
    "MIN_PART_BYTES",
    "PartPlan",
    "multipart_answer",
    "plan_parts",
    "url_budget",
]

MIN_PART_BYTES = limits.PART_MIN_BYTES  # S3: every part but the last
MAX_PART_BYTES = limits.PART_MAX_BYTES  # S3: one part
MAX_OBJECT_BYTES = limits.OBJECT_BYTES  # S3: one object, 5 TiB
DEFAULT_PART_BYTES = limits.DEFAULT_PART_BYTES  # when the client does not ask for a count
MAX_PARTS_PER_FILE = limits.PARTS_PER_FILE
MAX_PRESIGNED_URLS = limits.PRESIGNED_URLS


@dataclass(frozen=True)
class PartPlan:
    part_size: int
    count: int

    @property
    def urls(self) -> int:
        """URLs its answer carries: one per part, and the completion."""
        return self.count + 1

    def lengths(self, size: int) -> list[int]:
        """Each part's length: ``part_size`` but the last, which holds the rest."""
        if self.count == 1:
            return [size]
        return [self.part_size] * (self.count - 1) + [size - self.part_size * (self.count - 1)]


def plan_parts(size: int, asked: int | None) -> PartPlan:
    """Pure: the part size for a file of ``size`` bytes, as close to ``asked`` parts as S3's
    part limits and our per-file cap allow (64 MiB parts when nothing is asked)."""
    if size == 0:
        return PartPlan(0, 1)
    fewest = -(-size // MAX_PART_BYTES)
    most = max(1, min(MAX_PARTS_PER_FILE, size // MIN_PART_BYTES))
    wanted = asked if asked is not None else -(-size // DEFAULT_PART_BYTES)
    count = max(fewest, min(wanted, most))
    part_size = -(-size // count)
    return PartPlan(part_size, -(-size // part_size))


def url_budget() -> Budget:
    """How many URLs one request may presign in all."""
    return Budget(MAX_PRESIGNED_URLS)


def multipart_answer(
    upload_id: str, plan: PartPlan, part_urls: list[str], lengths: list[int], complete_url: str
) -> dict[str, Any]:
    """The fields of a ``"status": "multipart"`` answer."""
    return {
        "status": Status.MULTIPART,
        "upload_id": upload_id,
        "part_size": plan.part_size,
        "parts": [
            {"number": number, "url": url, "headers": {"Content-Length": str(length)}}
            for number, (url, length) in enumerate(zip(part_urls, lengths, strict=True), 1)
        ],
        "complete": {"url": complete_url, "method": "POST"},
    }
