"""The AWS half: moto's server on loopback, the bucket and the table, dummy credentials."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["AwsResources", "MotoServer", "create_resources", "use_dummy_credentials"]


def use_dummy_credentials(region: str, endpoint: str | None = None) -> None:
    """Point every boto3 client of this process at `endpoint` with fake keys, never at AWS."""
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"  # noqa: S105 -- moto's dummy credential
    os.environ["AWS_SESSION_TOKEN"] = "testing"  # noqa: S105 -- moto's dummy credential
    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ["AWS_REGION"] = region
    os.environ.pop("AWS_PROFILE", None)
    if endpoint is not None:
        os.environ["AWS_ENDPOINT_URL"] = endpoint


class MotoServer:
    """moto.server.ThreadedMotoServer on `host`, a free port when `port` is 0."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 -- heavy import, only here

        self._server: Any = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._started = False

    def start(self) -> str:
        self._server.start()
        self._started = True
        return self.url

    @property
    def url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._server.stop()


@dataclass(frozen=True)
class AwsResources:
    endpoint: str
    region: str
    bucket: str
    table: str


def create_resources(resources: AwsResources) -> None:
    """Create the bucket and the sessions table (user_id HASH, timestamp RANGE)."""
    import boto3  # noqa: PLC0415 -- keep `import exportsync_devstack` light

    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 -- moto's dummy credential
        region_name=resources.region,
    )
    s3 = session.client("s3", endpoint_url=resources.endpoint)
    if resources.region == "us-east-1":
        s3.create_bucket(Bucket=resources.bucket)
    else:
        s3.create_bucket(
            Bucket=resources.bucket,
            CreateBucketConfiguration={"LocationConstraint": resources.region},  # type: ignore[typeddict-item]
        )
    dynamodb = session.client("dynamodb", endpoint_url=resources.endpoint)
    dynamodb.create_table(
        TableName=resources.table,
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
