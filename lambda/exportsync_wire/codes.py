"""``error.code`` of the function's own error bodies (``{"error": {"code", "message"}}``)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ErrorCode"]


class ErrorCode(StrEnum):
    INVALID_JSON = "invalid_json"  # 400: the body is not UTF-8 JSON
    INVALID_BODY = "invalid_body"  # 400: JSON of the wrong shape, or over a count limit
    INVALID_MANIFEST = "invalid_manifest"  # 400: the multipart manifest part is malformed
    MALFORMED_MULTIPART = "malformed_multipart"  # 400: the form itself cannot be parsed
    MISSING_USER = "missing_user"  # 400: no key identity and no user_id
    INVALID_USER = "invalid_user"  # 400: a user name that cannot be a key prefix
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # 415
    NOT_FOUND = "not_found"  # 404: no such route
    METHOD_NOT_ALLOWED = "method_not_allowed"  # 405: a route takes POST only
    NO_IDENTITY = "no_identity"  # 403: no API key identity reached the function (fails closed)
    KEY_REVOKED = "key_revoked"  # 403: the API key's user is revoked (the user registry says so)
    TOO_LARGE = "too_large"  # 413: a lone /session body over limits.SESSION_TEXT_BYTES
    TOO_MANY_ENTRIES = "too_many_entries"  # 400: a /batch request over MAX_BATCH_ENTRIES
    NO_FILES = "no_files"  # 422: an upload without a file part
    NO_ENTRIES = "no_entries"  # 422: a /batch request without a file, session or presign part
    NOTHING_VALID = "nothing_valid"  # 422: every file part was rejected (results included)
    INTERNAL_ERROR = "internal_error"  # 500
