"""Where the gateway finds the API key a request carries: moto's API Gateway, as AWS keeps them.

A key is known when it exists and is attached to the stage's usage plan; a disabled key is known
but refused (403 Forbidden, as API Gateway answers). The listing is cached for `ttl` seconds, so a
key added, disabled or rotated with boto3 takes effect within that time, as on AWS where key
changes also take a moment to reach the gateway.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .clock import Clock, SystemClock

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient

__all__ = ["ApiGatewayKeyDirectory", "GatewayKey", "KeyDirectory", "StaticKeyDirectory"]


@dataclass(frozen=True)
class GatewayKey:
    """One usage-plan key. `user` is the key's name (the admin tool names keys by user)."""

    key_id: str
    user: str
    value: str = field(repr=False)
    enabled: bool = True


class KeyDirectory(Protocol):
    def find(self, value: str) -> GatewayKey | None:
        """The key whose value this is, or None for a missing or unknown key."""
        ...


def _match(keys: Iterable[GatewayKey], value: str) -> GatewayKey | None:
    # Compare every key in constant time so the answer's timing says nothing about near misses.
    found = None
    for key in keys:
        if hmac.compare_digest(key.value.encode(), value.encode()):
            found = key
    return found


class StaticKeyDirectory:
    """A fixed set of keys (tests of the gateway alone)."""

    def __init__(self, keys: Iterable[GatewayKey]) -> None:
        self._keys = tuple(keys)

    def find(self, value: str) -> GatewayKey | None:
        return _match(self._keys, value) if value else None


class ApiGatewayKeyDirectory:
    """The keys of one usage plan, read from API Gateway (moto's, in the devstack)."""

    def __init__(
        self,
        client: APIGatewayClient,
        usage_plan_id: str,
        ttl: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self._plan = usage_plan_id
        self._ttl = ttl
        self._clock = clock if clock is not None else SystemClock()
        self._lock = threading.Lock()
        self._keys: tuple[GatewayKey, ...] = ()
        self._loaded_at: float | None = None
        self._refreshing = False

    def find(self, value: str) -> GatewayKey | None:
        if not value:
            return None
        return _match(self._current(), value)

    def _current(self) -> tuple[GatewayKey, ...]:
        with self._lock:
            now = self._clock.monotonic()
            if self._loaded_at is None:  # the first listing: everyone waits for it
                self._keys, self._loaded_at = self._load(), now
                return self._keys
            if now - self._loaded_at < self._ttl or self._refreshing:
                return self._keys
            self._refreshing = True
        # One thread refreshes; the others keep answering from the last listing meanwhile, so
        # a slow listing never holds requests back (and never bunches them up).
        try:
            keys = self._load()
        finally:
            with self._lock:
                self._refreshing = False
        with self._lock:
            self._keys, self._loaded_at = keys, now
            return keys

    def _load(self) -> tuple[GatewayKey, ...]:
        in_plan: set[str] = set()
        for plan_page in self._client.get_paginator("get_usage_plan_keys").paginate(
            usagePlanId=self._plan
        ):
            in_plan.update(item["id"] for item in plan_page.get("items", []) if "id" in item)
        keys: list[GatewayKey] = []
        for page in self._client.get_paginator("get_api_keys").paginate(includeValues=True):
            for item in page.get("items", []):
                key_id, value = item.get("id"), item.get("value")
                if key_id in in_plan and key_id and value:
                    name = item.get("name") or key_id
                    keys.append(GatewayKey(key_id, name, value, bool(item.get("enabled"))))
        return tuple(keys)
