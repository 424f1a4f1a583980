"""How a file is cut into the parts of a multipart upload, and the digests that pin them.

Both sides compute the plan: the client hashes each part before it asks (its ``part_sha256``
are signed into the part URLs), and the server presigns exactly those parts.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from . import limits

__all__ = ["PartPlan", "checksum_b64", "composite_sha256", "plan_parts"]


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
    fewest = -(-size // limits.PART_MAX_BYTES)
    most = max(1, min(limits.PARTS_PER_FILE, size // limits.PART_MIN_BYTES))
    wanted = asked if asked is not None else -(-size // limits.DEFAULT_PART_BYTES)
    count = max(fewest, min(wanted, most))
    part_size = -(-size // count)
    return PartPlan(part_size, -(-size // part_size))


def checksum_b64(sha256_hex: str) -> str:
    """The base64 form S3 wants in ``x-amz-checksum-sha256``."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


def composite_sha256(part_sha256: Sequence[str]) -> str:
    """S3's COMPOSITE checksum of a multipart object (base64, without the ``-N`` suffix): the
    sha256 of the parts' binary sha256 digests, in part order."""
    joined = b"".join(bytes.fromhex(digest) for digest in part_sha256)
    return base64.b64encode(hashlib.sha256(joined).digest()).decode("ascii")
