"""What an exception raised while storing one entry means for that entry alone.

Tree of answers: ``retry`` (a transient fault of this write: a throttle, an AWS 5xx, a dropped
connection, or a server-side fault the client cannot fix: send it again later) and ``rejected``
(the store refused this entry's content for good, e.g. DynamoDB's ValidationException).
Neither ever turns the request into a 5xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from botocore import exceptions as aws_errors

from exportsync_wire import Status

__all__ = ["EntryFault", "classify"]

# Throttles and capacity errors, by the codes DynamoDB and S3 answer.
_THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "TooManyRequestsException",
        "TransactionConflictException",
        "ConditionalRequestConflict",  # S3: another conditional write of the key in flight
    }
)
# The store looked at this entry's content and refused it: sending it again cannot help.
_REFUSED_CODES = frozenset(
    {
        "ValidationException",
        "ItemCollectionSizeLimitExceededException",
        "EntityTooLarge",
        "EntityTooSmall",
        "InvalidArgument",
        "KeyTooLongError",
        "BadDigest",
        "InvalidDigest",
        "InvalidPart",
    }
)
_MAX_MESSAGE = 300


@dataclass(frozen=True)
class EntryFault:
    status: Literal[Status.RETRY, Status.REJECTED]
    error: str


def classify(exc: BaseException) -> EntryFault:
    """The per-entry answer for ``exc``; ``error`` is ``code: message`` (never the API key:
    boto3's text names buckets, tables and keys only)."""
    if isinstance(exc, aws_errors.ClientError):
        code, message, http_status = _client_error(exc)
        if code in _REFUSED_CODES:
            return EntryFault(Status.REJECTED, _short(f"store_refused: {code}: {message}"))
        if code in _THROTTLE_CODES:
            return EntryFault(Status.RETRY, _short(f"throttled: {code}: {message}"))
        if http_status >= 500:
            return EntryFault(Status.RETRY, _short(f"store_unavailable: {code}: {message}"))
        # AccessDenied, NoSuchBucket, ResourceNotFoundException: the deployment's fault,
        # not the entry's; it goes through once the server is fixed.
        return EntryFault(Status.RETRY, _short(f"server_error: {code}: {message}"))
    # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError...
    if isinstance(exc, (aws_errors.ConnectionError, aws_errors.HTTPClientError)):
        return EntryFault(Status.RETRY, _short(f"store_unreachable: {type(exc).__name__}"))
    return EntryFault(Status.RETRY, _short(f"server_error: {type(exc).__name__}"))


def _client_error(exc: aws_errors.ClientError) -> tuple[str, str, int]:
    response: Any = exc.response
    error = response.get("Error", {}) or {}
    meta = response.get("ResponseMetadata", {}) or {}
    status = meta.get("HTTPStatusCode", 0)
    return (
        str(error.get("Code", "")),
        str(error.get("Message", "")),
        status if isinstance(status, int) else 0,
    )


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
