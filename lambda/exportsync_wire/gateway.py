"""API Gateway's own error answers (``{"message": ...}``, not the function's error bodies): the
devstack gives them as AWS does, and the daemon tells the two 429s apart only by their text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "BAD_GATEWAY",
    "FORBIDDEN",
    "INVOKE_FAILED",
    "LIMIT_EXCEEDED",
    "NO_ROUTE",
    "REQUEST_TOO_LONG",
    "TIMED_OUT",
    "TOO_MANY_REQUESTS",
    "UNAVAILABLE",
    "GatewayError",
]


@dataclass(frozen=True)
class GatewayError:
    status: int
    message: str  # the body's "message"
    error_type: str  # the x-amzn-ErrorType header


# A missing or unknown API key (checked before the usage plan).
FORBIDDEN: Final = GatewayError(403, "Forbidden", "ForbiddenException")
# No such resource or method.
NO_ROUTE: Final = GatewayError(403, "Missing Authentication Token", "MissingAuthenticationToken")
# The plan's rate or burst: retry after a pause; no quota used.
TOO_MANY_REQUESTS: Final = GatewayError(429, "Too Many Requests", "TooManyRequestsException")
# The plan's quota for the period is spent: nothing more until it resets.
LIMIT_EXCEEDED: Final = GatewayError(429, "Limit Exceeded", "LimitExceededException")
# A body over the gateway's payload quota (limits.GATEWAY_BODY_BYTES).
REQUEST_TOO_LONG: Final = GatewayError(413, "Request Too Long", "RequestTooLarge")
# The Lambda API refused the invoke (an event over limits.LAMBDA_EVENT_BYTES).
INVOKE_FAILED: Final = GatewayError(500, "Internal server error", "InternalServerErrorException")
# The function crashed or answered in the wrong format.
BAD_GATEWAY: Final = GatewayError(502, "Internal server error", "InternalServerErrorException")
UNAVAILABLE: Final = GatewayError(503, "Service Unavailable", "ServiceUnavailableException")
# The integration ran past the gateway's timeout (the function may still have run).
TIMED_OUT: Final = GatewayError(504, "Endpoint request timed out", "IntegrationTimeout")
