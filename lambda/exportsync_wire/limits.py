"""Every size and count limit both sides of the API obey, with where it comes from."""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_PART_BYTES",
    "GATEWAY_BODY_BYTES",
    "INFLATED_BYTES",
    "INLINE_BODY_BYTES",
    "INLINE_CEILING_BYTES",
    "ITEM_BYTES",
    "ITEM_CHECKED_BYTES",
    "ITEM_DEPTH",
    "LAMBDA_EVENT_BYTES",
    "MAX_BATCH_ENTRIES",
    "MAX_ROUTE_ENTRIES",
    "OBJECT_BYTES",
    "PARTITION_KEY_BYTES",
    "PARTS_PER_FILE",
    "PART_MAX_BYTES",
    "PART_MIN_BYTES",
    "PRESIGNED_URLS",
    "PUT_BYTES",
    "SESSION_TEXT_BYTES",
    "SESSION_VALUES",
    "SORT_KEY_BYTES",
]

_MIB = 1024 * 1024

# Entries one /upload, /session or /presign request may hold (one more is a 400).
MAX_ROUTE_ENTRIES: Final = 1_000
# Entries in all (files + sessions + presign entries) that one /batch request carries; one more
# is a 400 too_many_entries.
MAX_BATCH_ENTRIES: Final = 1_000

# S3's limit for one PUT; larger files need a multipart upload.
PUT_BYTES: Final = 5 * 1024**3
# S3's limits for one object and for the parts of a multipart upload (all but the last part).
OBJECT_BYTES: Final = 5 * 1024**4
PART_MIN_BYTES: Final = 5 * _MIB
PART_MAX_BYTES: Final = 5 * 1024**3
# Our caps: parts per file (5 TiB in 5 GiB parts), and presigned URLs in one answer (a PUT is
# one, a multipart upload its parts and its completion), which keep the answer under Lambda's
# 6 MB response limit (a URL signed with session credentials and a long name is about 2.3 KB).
PARTS_PER_FILE: Final = 1024
PRESIGNED_URLS: Final = 2048
# The part size the server picks when an entry does not ask for a part count.
DEFAULT_PART_BYTES: Final = 64 * _MIB

# A gzip file part inflates to at most this, and so do all of one request's gzip parts together.
# The function keeps an inflated part whole until it is stored (S3 needs its length and
# digest): 32 MiB keeps a request's worst gzip within 256 MiB of the function's memory.
INFLATED_BYTES: Final = 32 * _MIB

# DynamoDB's item size and nesting limits, which every session must meet.
ITEM_BYTES: Final = 400 * 1024
ITEM_DEPTH: Final = 32
# DynamoDB's key limits: a session's user_id (partition key) and timestamp (sort key), UTF-8.
PARTITION_KEY_BYTES: Final = 2048
SORT_KEY_BYTES: Final = 1024
# What the function accepts: our size estimate and DynamoDB's own count differ near the limit
# (moto refuses above 405,000 bytes, AWS a little above 409,600), so refuse early, alone.
ITEM_CHECKED_BYTES: Final = ITEM_BYTES - 10 * 1024
# A session's JSON text (one /session body, one element of a list) over this is refused before it
# is parsed: no item over ITEM_BYTES needs more text than this (the daemon sends it compact).
SESSION_TEXT_BYTES: Final = ITEM_BYTES
# JSON values (numbers, strings, lists, objects) the sessions of one request may hold in all; the
# sessions past it answer "retry". Each value costs the function about 300 bytes and 10 us while
# it is checked and written, so this keeps a request within 256 MiB and a few seconds.
SESSION_VALUES: Final = 100_000

# API Gateway's REST payload quota ("10 MB"): a larger body is answered 413 by the gateway.
GATEWAY_BODY_BYTES: Final = 10 * 1024 * 1024
# Lambda's synchronous invoke payload ("6 MB"), which holds the whole proxy event.
LAMBDA_EVENT_BYTES: Final = 6 * 1024 * 1024
# Binary bodies reach the function base64-encoded (x4/3): 4.5 MB raw is the hard ceiling...
INLINE_CEILING_BYTES: Final = 4_500_000
# ...and about 4 MB is what a body sent inline should stay under, leaving room for the event.
INLINE_BODY_BYTES: Final = 4_000_000
