"""Every size and count limit both sides of the API obey, with where it comes from."""

from __future__ import annotations

from typing import Final

__all__ = [
    "GATEWAY_BODY_BYTES",
    "INLINE_BODY_BYTES",
    "INLINE_CEILING_BYTES",
    "ITEM_BYTES",
    "ITEM_DEPTH",
    "LAMBDA_EVENT_BYTES",
    "MAX_BATCH_ENTRIES",
    "MAX_ENTRIES_PER_REQUEST",
    "PUT_BYTES",
]

# Entries (files, sessions or presign entries) one /upload, /session or /presign request carries.
MAX_ENTRIES_PER_REQUEST: Final = 100
# Entries in all that one /batch request carries.
MAX_BATCH_ENTRIES: Final = 1_000

# S3's limit for one PUT; larger files need a multipart upload.
PUT_BYTES: Final = 5 * 1024**3

# DynamoDB's item size and nesting limits, which every session must meet.
ITEM_BYTES: Final = 400 * 1024
ITEM_DEPTH: Final = 32

# API Gateway's REST payload quota ("10 MB"): a larger body is answered 413 by the gateway.
GATEWAY_BODY_BYTES: Final = 10 * 1024 * 1024
# Lambda's synchronous invoke payload ("6 MB"), which holds the whole proxy event.
LAMBDA_EVENT_BYTES: Final = 6 * 1024 * 1024
# Binary bodies reach the function base64-encoded (x4/3): 4.5 MB raw is the hard ceiling...
INLINE_CEILING_BYTES: Final = 4_500_000
# ...and about 4 MB is what a body sent inline should stay under, leaving room for the event.
INLINE_BODY_BYTES: Final = 4_000_000
