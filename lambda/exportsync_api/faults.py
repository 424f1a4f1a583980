"""What an exception raised while storing one entry means for that entry alone.

Tree of answers: ``retry`` (a transient fault of this write: a throttle, an AWS 5xx, a dropped
connection, or a server-side fault the client cannot fix: send it again later) and ``rejected``
(the store refused this entry's content for good, e.g. DynamoDB's ValidationException).
Neither ever turns the request into a 5xx.
"""

from __future__ import annotations

import re
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
# An AWS error code is a fixed word (``AccessDenied``); anything else in its place is not shown.
_AWS_CODE = re.compile(r"[A-Za-z][A-Za-z0-9.]{0,63}")
_MAX_DETAIL = 1000


@dataclass(frozen=True)
class EntryFault:
    """``error`` is what the client sees: ``"<our code>: <our message>"``; ``detail`` (AWS's
    own message, which may name the account and role) is for the function's log only."""

    status: Literal[Status.RETRY, Status.REJECTED]
    error: str
    detail: str = ""


def classify(exc: BaseException) -> EntryFault:
    """The per-entry answer for ``exc``: our words and AWS's error code, never AWS's message."""
    if isinstance(exc, aws_errors.ClientError):
        code, message, http_status = _client_error(exc)
        shown = code if _AWS_CODE.fullmatch(code) else "UnknownError"
        detail = message[:_MAX_DETAIL]
        if code in _REFUSED_CODES:
            error = f"store_refused: {shown}: the store refused this entry's content"
            return EntryFault(Status.REJECTED, error, detail)
        if code in _THROTTLE_CODES:
            error = f"throttled: {shown}: the store is busy; send it again later"
            return EntryFault(Status.RETRY, error, detail)
        if http_status >= 500:
            error = f"store_unavailable: {shown}: the store failed; send it again later"
            return EntryFault(Status.RETRY, error, detail)
        # AccessDenied, NoSuchBucket, ResourceNotFoundException: the deployment's fault,
        # not the entry's; it goes through once the server is fixed.
        error = f"server_error: {shown}: the server cannot store this now; send it again later"
        return EntryFault(Status.RETRY, error, detail)
    # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError...
    if isinstance(exc, (aws_errors.ConnectionError, aws_errors.HTTPClientError)):
        error = f"store_unreachable: {type(exc).__name__}: the store did not answer"
        return EntryFault(Status.RETRY, error, str(exc)[:_MAX_DETAIL])
    error = f"server_error: {type(exc).__name__}: an unexpected fault; send it again later"
    return EntryFault(Status.RETRY, error, str(exc)[:_MAX_DETAIL])


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
