"""gzip file parts inflated with a hard cap: a part never grows past the size its manifest
declares, so a zip bomb costs at most that much memory and is refused alone."""

from __future__ import annotations

import zlib

from exportsync_wire import limits

from .budget import Budget

__all__ = ["MAX_INFLATED_BYTES", "InflateError", "inflate_budget", "inflate_gzip"]

# Inflated bytes one request may hold in memory at once (the function has 1024 MB).
MAX_INFLATED_BYTES = limits.INFLATED_BYTES
_WBITS_GZIP = 16 + zlib.MAX_WBITS  # gzip header and trailer (CRC-32, length) checked by zlib
_STEP = 64 * 1024  # compressed bytes fed per step


class InflateError(ValueError):
    """The part is not a complete gzip stream, or inflates past its cap."""


def inflate_gzip(data: bytes, limit: int) -> bytes:
    """The decompressed bytes of ``data`` (one or more gzip members); raises
    :class:`InflateError` as soon as the output would pass ``limit`` bytes."""
    out = bytearray()
    rest = memoryview(data)
    while True:
        inflater = zlib.decompressobj(_WBITS_GZIP)
        rest = _member(inflater, rest, out, limit)
        if not rest:
            return bytes(out)


def _member(inflater: zlib._Decompress, data: memoryview, out: bytearray, limit: int) -> memoryview:
    """Inflate one gzip member into ``out``; return what follows it."""
    offset = 0
    pending = b""
    try:
        while not inflater.eof:
            if not pending:
                if offset >= len(data):
                    raise InflateError("truncated gzip stream")
                pending = bytes(data[offset : offset + _STEP])
                offset += len(pending)
            # max_length: never more than one byte past the cap, whatever the ratio.
            out += inflater.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise InflateError(f"inflates beyond its declared size of {limit} bytes")
            pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise InflateError(f"not a valid gzip stream ({exc})") from None
    return memoryview(inflater.unused_data + pending + bytes(data[offset:]))


def inflate_budget() -> Budget:
    """What one request may inflate in all."""
    return Budget(MAX_INFLATED_BYTES)
