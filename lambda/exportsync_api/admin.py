"""`python -m exportsync_api.admin users add NAME | list | revoke NAME | rotate NAME | purge`.

Manages users' API keys on AWS or on the devstack alike (point it there with --endpoint-url or
AWS_ENDPOINT_URL). `add` and `rotate` print the new key once, on stdout, as one JSON line; it is
written nowhere else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING

try:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError
except ModuleNotFoundError as exc:  # a plain `pip install .` carries no boto3
    _MISSING: str | None = exc.name or "boto3"
else:
    _MISSING = None

from .accounts import AccountError, KeyManager

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient

__all__ = ["main", "parse_args"]


class UsageError(Exception):
    """A missing or ambiguous setting (exit code 2)."""


# The devstack takes requests signed with its dummy keys only; on AWS, an IAM user's or role's
# real credentials.
_NO_CREDENTIALS = (
    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE); "
    "against the devstack its dummy keys, AWS_ACCESS_KEY_ID=testing "
    "AWS_SECRET_ACCESS_KEY=testing"
)
_NO_REGION = "no AWS region: pass --region or set AWS_REGION (the devstack prints its region)"


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m exportsync_api.admin", description="Manage exportsync users' API keys."
    )
    parser.add_argument(
        "--endpoint-url",
        default=environ.get("AWS_ENDPOINT_URL"),
        help="AWS endpoint (the devstack's aws_endpoint); default: AWS itself",
    )
    parser.add_argument(
        "--region", default=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    )
    parser.add_argument(
        "--table",
        default=environ.get("EXPORTSYNC_USERS_TABLE"),
        help="the user registry table (env EXPORTSYNC_USERS_TABLE)",
    )
    parser.add_argument(
        "--usage-plan-id",
        default=environ.get("EXPORTSYNC_USAGE_PLAN_ID"),
        help="env EXPORTSYNC_USAGE_PLAN_ID; default: the account's only usage plan",
    )
    commands = parser.add_subparsers(dest="group", required=True)
    users = commands.add_parser("users", help="add, list, revoke or rotate users").add_subparsers(
        dest="command", required=True
    )
    for name, text in (
        ("add", "create the user's key and print it once"),
        ("revoke", "disable every key of the user"),
        ("rotate", "issue a new key, disable the old one, print the new one once"),
    ):
        users.add_parser(name, help=text).add_argument("name")
    users.add_parser("list", help="every registered key (never the values)")
    purge = users.add_parser("purge", help="delete keys retired long ago from API Gateway")
    purge.add_argument("--days", type=int, default=30, help="retired at least this long ago")
    return parser.parse_args(argv)


def _only_usage_plan(client: APIGatewayClient) -> str:
    plans = [
        plan["id"]
        for page in client.get_paginator("get_usage_plans").paginate()
        for plan in page.get("items", [])
        if "id" in plan
    ]
    if len(plans) != 1:
        raise UsageError(f"found {len(plans)} usage plans; name one with --usage-plan-id")
    return plans[0]


def _manager(args: argparse.Namespace) -> KeyManager:
    if not args.table:
        raise UsageError("--table (or EXPORTSYNC_USERS_TABLE) is required")
    session = boto3.session.Session(region_name=args.region)
    apigw = session.client("apigateway", endpoint_url=args.endpoint_url)
    dynamodb = session.client("dynamodb", endpoint_url=args.endpoint_url)
    plan = args.usage_plan_id or _only_usage_plan(apigw)
    return KeyManager(apigw, dynamodb, plan, args.table)


def _run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> None:
    manager = _manager(args)
    if args.command == "list":
        for row in manager.list_keys():
            out.write(json.dumps(asdict(row)) + "\n")
        return
    if args.command == "purge":
        cutoff = datetime.now(UTC) - timedelta(days=args.days)
        purged = manager.purge(cutoff.isoformat(timespec="seconds"))
        out.write(json.dumps({"purged": purged}) + "\n")
        return
    if args.command == "revoke":
        revoked = manager.revoke(args.name)
        out.write(json.dumps({"user_id": args.name, "revoked": revoked}) + "\n")
        return
    new = manager.add(args.name) if args.command == "add" else manager.rotate(args.name)
    out.write(
        json.dumps({"user_id": new.user_id, "api_key_id": new.api_key_id, "api_key": new.value})
        + "\n"
    )
    err.write("The key is shown this once: put it in the user's api_key_file now.\n")


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    args = parse_args(argv, os.environ if environ is None else environ)
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    if _MISSING is not None:
        err.write(
            f"error: the admin tool needs boto3 ({_MISSING} is not installed): "
            "pip install 'exportsync[lambda]'\n"
        )
        return 2
    try:
        _run(args, out, err)
    except NoCredentialsError:
        err.write(f"error: {_NO_CREDENTIALS}\n")
        return 2
    except NoRegionError:
        err.write(f"error: {_NO_REGION}\n")
        return 2
    except UsageError as exc:
        err.write(f"error: {exc}\n")
        return 2
    except AccountError as exc:
        err.write(f"error: {exc}\n")
        return 1
    except (ClientError, BotoCoreError) as exc:
        # boto3's messages name operations and resources, never a key's value.
        err.write(f"error: {exc}\n")
        return 1
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
