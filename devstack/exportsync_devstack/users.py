"""--users N: the usage plan, the user registry and one API key per user, made in moto.

They are made with the same code the admin tool runs against AWS (exportsync_api.accounts), so
`python -m exportsync_api.admin users ...` pointed at the devstack finds the same plan and table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exportsync_api.accounts import KeyManager, create_registry_table

from .plans import PlanLimits
from .state import load_or_create_api_key

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["PLAN_NAME", "SeededUser", "create_usage_plan", "seed_users", "user_ids"]

PLAN_NAME = "exportsync-devstack"


@dataclass(frozen=True)
class SeededUser:
    user_id: str
    api_key_id: str
    api_key: str = field(repr=False)


def user_ids(first: str, count: int) -> list[str]:
    """`first`, then `first-2` ... `first-N`: the first user is the single-user devstack's."""
    return [first, *(f"{first}-{n}" for n in range(2, count + 1))]


def create_usage_plan(client: APIGatewayClient, limits: PlanLimits) -> str:
    """The plan the keys join; 0 (unlimited) leaves the throttle or quota out, as on AWS."""
    args: dict[str, Any] = {"name": PLAN_NAME}
    if limits.rate > 0:
        args["throttle"] = {"rateLimit": limits.rate, "burstLimit": limits.burst}
    if limits.quota > 0:
        args["quota"] = {"limit": limits.quota, "period": "DAY"}
    return client.create_usage_plan(**args)["id"]


def seed_users(
    apigateway: APIGatewayClient,
    dynamodb: DynamoDBClient,
    *,
    limits: PlanLimits,
    table: str,
    names: list[str],
    first_key: str | None,
    state_dir: Path | None,
) -> tuple[str, list[SeededUser]]:
    """Create plan, registry and users; the plan id and the users in order.

    The first user's key is `first_key` or state_dir/api_key; the others' are kept in
    state_dir/api_key.<user> so a restarted devstack gives every daemon the same key again.
    """
    plan_id = create_usage_plan(apigateway, limits)
    create_registry_table(dynamodb, table)
    manager = KeyManager(apigateway, dynamodb, plan_id, table)
    seeded: list[SeededUser] = []
    for index, name in enumerate(names):
        if index == 0:
            value = first_key or load_or_create_api_key(state_dir)
        else:
            value = load_or_create_api_key(state_dir, f"api_key.{name}")
        new = manager.add(name, value)
        seeded.append(SeededUser(name, new.api_key_id, new.value))
    return plan_id, seeded
