"""gzip file parts inflated with a hard cap: a part never grows past the size its manifest
declares, so a zip bomb costs at most that much memory and is refused alone."""

from __future__ import annotations

import zlib

from exportsync_wire import limits

from .budget import Budget

__all__ = ["InflateError", "inflate_budget", "inflate_gzip"]

# Inflated bytes one request may hold in memory at once (the function has 1024 MB).
_WBITS_GZIP = 16 + zlib.MAX_WBITS  # gzip header and trailer (CRC-32, length) checked by zlib
_STEP = 64 * 1024  # compressed bytes fed per step


class InflateError(ValueError):
    """The part is not a complete gzip stream, or inflates past its cap."""


def inflate_gzip(data: bytes, limit: int) -> bytes:
    """The decompressed bytes of ``data`` (one or more gzip members); raises
    :class:`InflateError` as soon as the output would pass ``limit`` bytes."""
    out = bytearray()
    view = memoryview(data)
    offset = 0
    pending = b""
    inflater = zlib.decompressobj(_WBITS_GZIP)
    in_member = False
    members = 0
    try:
        while True:
            if not pending:
                if offset >= len(view):
                    break
                # The input goes in steps, so nothing is copied twice, however many members.
                pending = bytes(view[offset : offset + _STEP])
                offset += len(pending)
            in_member = True
            # max_length: never more than one byte past the cap, whatever the ratio.
            out += inflater.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise InflateError(f"inflates beyond its declared size of {limit} bytes")
            if inflater.eof:
                members += 1
                in_member = False
                pending = inflater.unused_data  # the next member starts here
                inflater = zlib.decompressobj(_WBITS_GZIP)
            else:
                pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise InflateError(f"not a valid gzip stream ({exc})") from None
    if in_member or not members:
        raise InflateError("truncated gzip stream")
    # bytes() of a bytearray copies; the copy is brief, and the inflated size is capped.
    return bytes(out)


def inflate_budget() -> Budget:
    """What one request may inflate in all."""
    return Budget(limits.INFLATED_BYTES)
