"""Multipart uploads, presigned whole: how a file is cut into parts, and the answer that carries
every part URL and the completion URL, so the upload costs the one counted request.

Our caps (S3 allows 10,000 parts): at most ``limits.PARTS_PER_FILE`` parts per file and
``limits.PRESIGNED_URLS`` presigned URLs per request (a PUT is one, a multipart upload its parts and
its completion) keep the answer under Lambda's 6 MB response limit: a URL signed with session
credentials and a long filename is about 2.3 KB.
"""

from __future__ import annotations

from exportsync_wire import PresignResultJson, Status, limits
from exportsync_wire.parts import PartPlan, checksum_b64, plan_parts

from .budget import Budget

__all__ = [
    "PartPlan",
    "multipart_answer",
    "plan_parts",
    "url_budget",
]


def url_budget() -> Budget:
    """How many URLs one request may presign in all."""
    return Budget(limits.PRESIGNED_URLS)


def multipart_answer(
    fields: PresignResultJson,
    upload_id: str,
    plan: PartPlan,
    *,
    part_urls: list[str],
    part_sha256: tuple[str, ...],
    complete: tuple[str, str, int],
) -> PresignResultJson:
    """The ``"status": "multipart"`` answer to the entry of ``fields``; ``complete`` is the
    completion's URL, composite sha256 (base64) and the object's size, the headers its URL signs."""
    size = complete[2]
    lengths = plan.lengths(size)
    parts = zip(part_urls, lengths, part_sha256, strict=True)
    return {
        **fields,
        "status": Status.MULTIPART,
        "upload_id": upload_id,
        "part_size": plan.part_size,
        "parts": [
            {
                "number": number,
                "url": url,
                "headers": {
                    "Content-Length": str(length),
                    "x-amz-checksum-sha256": checksum_b64(digest),
                },
            }
            for number, (url, length, digest) in enumerate(parts, 1)
        ],
        "complete": {
            "url": complete[0],
            "method": "POST",
            "headers": {
                "x-amz-checksum-sha256": complete[1],
                "x-amz-mp-object-size": str(size),
                "If-None-Match": "*",
            },
        },
    }
