"""Fixtures for the Lambda tests: dummy AWS credentials, moto-backed and in-memory dependencies."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
import requests
from botocore.config import Config
from fakes import MemoryObjectStore, MemorySessionStore
from lambda_support import BUCKET, KEY_USERS, REGION, TABLE, Moto, create_resources
from moto import mock_aws
from moto.server import ThreadedMotoServer

from exportsync_api import app
from exportsync_api.app import Dependencies
from exportsync_api.settings import Settings
from exportsync_api.stores import DynamoSessionStore, S3ObjectStore


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials, a fixed region and no endpoint: nothing can reach real AWS."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def moto_deps() -> Iterator[Moto]:
    """Real S3/DynamoDB stores against moto's in-process mock."""
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION, config=Config(signature_version="s3v4"))
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_resources(s3, dynamodb)
        settings = Settings(bucket=BUCKET, table=TABLE, key_users=KEY_USERS)
        deps = Dependencies(
            settings=settings,
            objects=S3ObjectStore(s3, BUCKET),
            sessions=DynamoSessionStore(dynamodb, TABLE),
        )
        yield Moto(deps, s3, dynamodb)


@pytest.fixture
def memory_deps() -> Dependencies:
    """In-memory stores: for tests about parsing and answers, not storage."""
    return Dependencies(
        settings=Settings(bucket=BUCKET, table=TABLE, key_users=KEY_USERS),
        objects=MemoryObjectStore(),
        sessions=MemorySessionStore(),
    )


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def live(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The environment the devstack sets before calling the handler, and fresh resources."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("EXPORTSYNC_BUCKET", BUCKET)
    monkeypatch.setenv("EXPORTSYNC_TABLE", TABLE)
    monkeypatch.setenv("EXPORTSYNC_KEY_USERS", json.dumps({"kid-alice": "alice"}))
    monkeypatch.setenv("EXPORTSYNC_PRESIGN_SECONDS", "120")
    s3 = boto3.client("s3", region_name=REGION)
    create_resources(s3, boto3.client("dynamodb", region_name=REGION))
    app.default_dependencies.cache_clear()
    yield s3
    app.default_dependencies.cache_clear()
