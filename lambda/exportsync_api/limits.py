"""Limits every route shares (the daemon sizes its requests by the same numbers)."""

from __future__ import annotations

__all__ = ["MAX_ENTRIES"]

# Entries of one request: files + sessions + presign asks (POST /batch), or one route's list.
MAX_ENTRIES = 1000
