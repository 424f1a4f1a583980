"""The daemon's exception tree: one root, retryability explicit on every class.

ExportsyncError
├── ConfigError            a config key is missing or wrong (exit code 2)
│   └── ConfigNotFound     no config file anywhere a command looks (configpath)
├── SpoolError             the state directory or spool database cannot be used
│   ├── SpoolCorrupt       the spool file is not a database, or a damaged one
│   └── SpoolFull          the state directory's disk is full: `run` waits for room
├── FileRejected           a file can never be delivered as it is (symlink, too big, bad JSON)
├── FileChanged            a file is not (or no longer) what was spooled: retried (fs.files)
└── DeliveryError          a request did not deliver its batch
    ├── Throttled          429 "Too Many Requests": retry after a jittered pause
    ├── QuotaExhausted     429 "Limit Exceeded": nothing more until the quota resets
    ├── Forbidden          403: the API key is missing or wrong; retry once it is fixed
    ├── Redirected         3xx: api.url points at a redirect, which is never followed
    ├── TransientError     5xx, timeout, dropped connection: retry with backoff
    │   ├── Unreachable    the request never left this machine: not counted against the quota
    │   └── ProtocolError  an answer the contract does not name (a status like "ok"): retry
    ├── PermanentError     any other 4xx: the server refused the content; never retried
    └── RequestTooLarge    413: the request body was over the gateway's limit; send less

Outside the tree: `fs.dirfd.WatchDirReplaced` is a FileNotFoundError (a folder swapped for a
symlink is a missing folder), `service.ServiceError` a ValueError (a service file that cannot be
rendered as asked). tests/daemon/test_errors.py holds this drawing to the code.
"""

from __future__ import annotations

__all__ = [
    "DELIVERY_FAILURES",
    "KEY_REFUSED_MARK",
    "REDIRECT_MARK",
    "ConfigError",
    "DeliveryError",
    "DeliveryFailure",
    "ExportsyncError",
    "FileRejected",
    "Forbidden",
    "PermanentError",
    "ProtocolError",
    "QuotaExhausted",
    "Redirected",
    "RequestTooLarge",
    "SpoolCorrupt",
    "SpoolError",
    "SpoolFull",
    "Throttled",
    "TransientError",
    "Unreachable",
]


class ExportsyncError(Exception):
    """Root of every error exportsync raises on purpose."""

    retryable: bool = False


class ConfigError(ExportsyncError):
    """A configuration value is missing or invalid; `key` names it (e.g. ``api.url``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class SpoolError(ExportsyncError):
    """The spool database or state directory cannot be used."""


class SpoolCorrupt(SpoolError):
    """The spool file is not an SQLite database, or a damaged one: `run` sets it aside."""


class SpoolFull(SpoolError):
    """The state directory's disk is full: `run` waits for room instead of exiting."""


class FileRejected(ExportsyncError):
    """A file can never be delivered in its current form; the reason is the message."""


class DeliveryError(ExportsyncError):
    """A request failed to deliver its batch. `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Throttled(DeliveryError):
    """The gateway's rate limit refused the request (429 Too Many Requests)."""

    retryable = True


class QuotaExhausted(DeliveryError):
    """The usage plan's quota for the period is used up (429 Limit Exceeded)."""

    retryable = True


class Forbidden(DeliveryError):
    """The gateway refused the API key (403). Items wait until the key is fixed."""

    retryable = True


# Words every 403's reason carries (delivery holds the items with it), so the spool can find the
# items held after one and release them when the API key changes.
KEY_REFUSED_MARK = "the API refused the key"

# Words every redirect's reason carries (client.classify), so the spool can find the items held
# after one and release them when `api.url` changes.
REDIRECT_MARK = "a redirect to"


class Redirected(DeliveryError):
    """The API answered with a redirect. It is never followed (the API key would go along to
    wherever it points); items wait until `api.url` is corrected."""

    retryable = True


class TransientError(DeliveryError):
    """5xx, timeout or dropped connection: the same request may succeed later."""

    retryable = True


class Unreachable(TransientError):
    """The request never left this machine (DNS failure, connection refused, connect timeout,
    TLS handshake): the gateway did not see it, so it does not count against the quota."""


class ProtocolError(TransientError):
    """The API answered in a way the contract does not name (an unknown result status): a
    protocol error of that request, whose items are all retried later, never failed. An API of
    another version, or a proxy in the way, is usually fixed without touching the items."""


class PermanentError(DeliveryError):
    """A 4xx other than 403/429: the content itself was refused and is not retried."""


class RequestTooLarge(DeliveryError):
    """413 from the gateway: the body was over its limit. A batch is split; one item alone fails."""


# Every concrete DeliveryError, as a union for exhaustive `match` and a tuple for `except`.
DeliveryFailure = (
    Throttled
    | QuotaExhausted
    | Forbidden
    | Redirected
    | TransientError
    | PermanentError
    | RequestTooLarge
)
DELIVERY_FAILURES = (
    Throttled,
    QuotaExhausted,
    Forbidden,
    Redirected,
    TransientError,
    PermanentError,
    RequestTooLarge,
)
