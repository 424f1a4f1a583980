"""The one exception the handler turns into a 4xx JSON answer.

Tree: ``ApiError`` (client error, never retried by a well-behaved client) with the HTTP status it
maps to. Anything else escaping a route is a server fault and becomes a 500.
"""

from __future__ import annotations

__all__ = ["ApiError", "bad_request", "unprocessable"]


class ApiError(Exception):
    """A client error: answered as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(
        self, status: int, code: str, message: str, extra: dict[str, object] | None = None
    ):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        # Extra top-level fields for the body, e.g. per-file results on a 422.
        self.extra = extra or {}

    def body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}, **self.extra}


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def unprocessable(code: str, message: str, extra: dict[str, object] | None = None) -> ApiError:
    return ApiError(422, code, message, extra)
