"""Users and their API keys: one key per active user, attached to the usage plan, in the registry.

The API Gateway side (the key, enabled or not, and its usage-plan attachment) is what the gateway
enforces; the registry item (key id -> user_id, status) is what the function reads. Every step
leaves a state both sides agree on: a new key is created disabled and enabled only once it is
attached and registered; a revoked key is disabled at the gateway first, then marked in the
registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .registry import ACTIVE, KEY_ATTRIBUTE, USER_INDEX

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "REVOKED",
    "ROTATED",
    "AccountError",
    "KeyManager",
    "NewKey",
    "RegisteredKey",
    "create_registry_table",
]

REVOKED = "revoked"
ROTATED = "rotated"


class AccountError(RuntimeError):
    """A request the registry's state does not allow (unknown user, user already active)."""


@dataclass(frozen=True)
class NewKey:
    """A key just made. `value` is shown to the operator once and kept nowhere else."""

    user_id: str
    api_key_id: str
    value: str = field(repr=False)


@dataclass(frozen=True)
class RegisteredKey:
    user_id: str
    api_key_id: str
    status: str
    created_at: str


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def create_registry_table(client: DynamoDBClient, table: str) -> None:
    """The registry's shape (the SAM template declares the same): key id HASH, GSI on user_id."""
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"},
            {"AttributeName": "user_id", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": USER_INDEX,
                "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


class KeyManager:
    """add, list_keys, revoke, rotate, purge against one usage plan and one registry table."""

    def __init__(
        self,
        apigateway: APIGatewayClient,
        dynamodb: DynamoDBClient,
        usage_plan_id: str,
        table: str,
        now: Callable[[], str] = _now_iso,
    ) -> None:
        self._apigw = apigateway
        self._ddb = dynamodb
        self._plan = usage_plan_id
        self._table = table
        self._now = now

    def add(self, user_id: str, value: str | None = None) -> NewKey:
        """A new user: refused when the user already has an active key (use rotate)."""
        if self._active_keys(user_id):
            raise AccountError(f"user {user_id!r} already has an active key; rotate it instead")
        return self._issue(user_id, value)

    def rotate(self, user_id: str) -> NewKey:
        """A new key for an active user; the old one is refused from then on."""
        old = self._active_keys(user_id)
        if not old:
            raise AccountError(f"user {user_id!r} has no active key")
        new = self._issue(user_id, None)
        for key_id in old:
            self._retire(key_id, ROTATED)
        return new

    def revoke(self, user_id: str) -> list[str]:
        """Disable every active key of the user; the ids of the keys revoked."""
        old = self._active_keys(user_id)
        if not old:
            raise AccountError(f"user {user_id!r} has no active key")
        for key_id in old:
            self._retire(key_id, REVOKED)
        return old

    def purge(self, retired_before: str) -> list[str]:
        """Delete from API Gateway the keys retired before this ISO time; their ids.

        API Gateway holds at most 10,000 keys per account and Region, retired ones included, so
        old revoked and rotated keys must go. Their registry items stay (status kept, with
        `purged_at`), so the function still refuses them and the history remains.
        """
        purged: list[str] = []
        for item in self._scan():
            status = item.get("status", {}).get("S")
            retired_at = item.get("retired_at", {}).get("S", "")
            if status == ACTIVE or "purged_at" in item or not retired_at:
                continue
            if retired_at >= retired_before:
                continue
            key_id = item[KEY_ATTRIBUTE]["S"]
            # A key deleted by hand already is recorded all the same.
            with contextlib.suppress(self._apigw.exceptions.NotFoundException):
                self._apigw.delete_api_key(apiKey=key_id)
            self._ddb.update_item(
                TableName=self._table,
                Key={KEY_ATTRIBUTE: {"S": key_id}},
                UpdateExpression="SET purged_at = :t",
                ExpressionAttributeValues={":t": {"S": self._now()}},
            )
            purged.append(key_id)
        return purged

    def list_keys(self) -> list[RegisteredKey]:
        """Every registered key, by user then creation time (never the key values)."""
        rows = [
            RegisteredKey(
                user_id=item.get("user_id", {}).get("S", ""),
                api_key_id=item.get(KEY_ATTRIBUTE, {}).get("S", ""),
                status=item.get("status", {}).get("S", ""),
                created_at=item.get("created_at", {}).get("S", ""),
            )
            for item in self._scan()
        ]
        return sorted(rows, key=lambda row: (row.user_id, row.created_at, row.api_key_id))

    def _scan(self) -> Iterator[dict[str, Any]]:
        for page in self._ddb.get_paginator("scan").paginate(TableName=self._table):
            yield from page.get("Items", [])

    def _active_keys(self, user_id: str) -> list[str]:
        found: list[str] = []
        pages = self._ddb.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=USER_INDEX,
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues={":u": {"S": user_id}},
        )
        for page in pages:
            for item in page.get("Items", []):
                if item.get("status", {}).get("S") == ACTIVE:
                    found.append(item[KEY_ATTRIBUTE]["S"])
        return found

    def _issue(self, user_id: str, value: str | None) -> NewKey:
        # Disabled until attached and registered: a half-made key never opens the gateway.
        args: dict[str, Any] = {"name": user_id, "enabled": False, "tags": {"user_id": user_id}}
        if value is not None:
            args["value"] = value
        created = self._apigw.create_api_key(**args)
        key_id, key_value = created["id"], created["value"]
        self._apigw.create_usage_plan_key(usagePlanId=self._plan, keyId=key_id, keyType="API_KEY")
        self._ddb.put_item(
            TableName=self._table,
            Item={
                KEY_ATTRIBUTE: {"S": key_id},
                "user_id": {"S": user_id},
                "status": {"S": ACTIVE},
                "created_at": {"S": self._now()},
            },
            ConditionExpression=f"attribute_not_exists({KEY_ATTRIBUTE})",
        )
        self._set_enabled(key_id, enabled=True)
        return NewKey(user_id, key_id, key_value)

    def _retire(self, key_id: str, status: str) -> None:
        self._set_enabled(key_id, enabled=False)
        self._ddb.update_item(
            TableName=self._table,
            Key={KEY_ATTRIBUTE: {"S": key_id}},
            UpdateExpression="SET #s = :s, retired_at = :t",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status}, ":t": {"S": self._now()}},
        )

    def _set_enabled(self, key_id: str, *, enabled: bool) -> None:
        self._apigw.update_api_key(
            apiKey=key_id,
            patchOperations=[
                {"op": "replace", "path": "/enabled", "value": "true" if enabled else "false"}
            ],
        )
