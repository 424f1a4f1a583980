"""The user registry: which user an API key stands for, and whether that user may still send.

One DynamoDB item per API key, ``{api_key_id (HASH), user_id, status, created_at}``, written by
``exportsync_api.admin``. The function reads it with one GetItem per key per cache period, so a
warm container answers from memory and a revoked key is refused within ``ttl`` seconds (the
gateway refuses it as soon as the key is disabled there).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from exportsync_wire import ErrorCode

from .errors import ApiError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "ACTIVE",
    "KEY_ATTRIBUTE",
    "USER_INDEX",
    "CachedUserDirectory",
    "DynamoUserDirectory",
    "KeyUser",
    "UserDirectory",
    "key_revoked",
    "no_identity",
    "resolve_user",
]

KEY_ATTRIBUTE = "api_key_id"  # the registry's partition key
USER_INDEX = "by_user"  # GSI on user_id, for the admin tool (the function never queries it)
ACTIVE = "active"


@dataclass(frozen=True)
class KeyUser:
    """One registry item: the user a key stands for and the key's status."""

    user_id: str
    status: str = ACTIVE

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


class UserDirectory(Protocol):
    def lookup(self, api_key_id: str) -> KeyUser | None:
        """The registry item for this key id, or None when the key is not registered."""
        ...


class DynamoUserDirectory:
    """The registry table. Needs only dynamodb:GetItem on it."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def lookup(self, api_key_id: str) -> KeyUser | None:
        item = self._client.get_item(
            TableName=self._table,
            Key={KEY_ATTRIBUTE: {"S": api_key_id}},
            ProjectionExpression="user_id, #s",
            ExpressionAttributeNames={"#s": "status"},
        ).get("Item")
        if not item:
            return None
        user_id = item.get("user_id", {}).get("S", "")
        status = item.get("status", {}).get("S", "")
        if not user_id:
            return None
        return KeyUser(user_id, status or ACTIVE)


class CachedUserDirectory:
    """Answers (misses too) kept for `ttl` seconds per container; `clock` is monotonic seconds."""

    def __init__(
        self,
        inner: UserDirectory,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, KeyUser | None]] = {}

    def lookup(self, api_key_id: str) -> KeyUser | None:
        now = self._clock()
        with self._lock:
            cached = self._entries.get(api_key_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        found = self._inner.lookup(api_key_id)
        with self._lock:
            self._entries[api_key_id] = (now, found)
        return found


def key_revoked() -> ApiError:
    return ApiError(403, ErrorCode.KEY_REVOKED, "this API key's user is revoked; ask for a new key")


def no_identity() -> ApiError:
    return ApiError(
        403, ErrorCode.NO_IDENTITY, "the request carries no API key identity; send x-api-key"
    )


def resolve_user(
    api_key_id: str | None,
    overrides: Mapping[str, str],
    directory: UserDirectory | None,
) -> str | None:
    """The user behind a key id: EXPORTSYNC_KEY_USERS first, then the registry, else the id itself.

    Raises the 403 ``key_revoked`` ApiError for a registered key that is no longer active.
    """
    if api_key_id is None:
        return None
    if api_key_id in overrides:
        return overrides[api_key_id]
    found = directory.lookup(api_key_id) if directory is not None else None
    if found is None:
        return api_key_id
    if not found.active:
        raise key_revoked()
    return found.user_id
