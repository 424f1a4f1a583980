"""Shared pieces of the Lambda tests: names of the test bucket/table and resource setup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exportsync_api.app import Dependencies

__all__ = ["BUCKET", "KEY_USERS", "REGION", "TABLE", "Moto", "create_resources"]

BUCKET = "exportsync-test-bucket"
TABLE = "exportsync-test-sessions"
REGION = "us-east-1"
KEY_USERS = {"kid-alice": "alice"}


def create_resources(s3: Any, dynamodb: Any) -> None:
    s3.create_bucket(Bucket=BUCKET)
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "user_id", "KeyType": "HASH"},
            {"AttributeName": "timestamp", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "user_id", "AttributeType": "S"},
            {"AttributeName": "timestamp", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


@dataclass
class Moto:
    deps: Dependencies
    s3: Any
    dynamodb: Any
