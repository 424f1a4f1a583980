"""The gateway's key lookup in (moto's) API Gateway: only the plan's keys, cached for a while."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from exportsync_devstack.apikeys import ApiGatewayKeyDirectory, GatewayKey
from exportsync_devstack.clock import FakeClock

VALUE = "key-value-of-ann-0123456789"


@pytest.fixture
def apigateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("apigateway", region_name="us-east-1")


def _disable(client: Any, key_id: str) -> None:
    client.update_api_key(
        apiKey=key_id, patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}]
    )


def test_keys_of_the_plan_are_found_and_changes_show_after_the_ttl(apigateway: Any) -> None:
    plan = apigateway.create_usage_plan(name="plan")["id"]
    ann = apigateway.create_api_key(name="ann", enabled=True, value=VALUE)["id"]
    apigateway.create_api_key(name="stray", enabled=True, value="not-in-the-plan-0123456789")
    apigateway.create_usage_plan_key(usagePlanId=plan, keyId=ann, keyType="API_KEY")
    clock = FakeClock()
    keys = ApiGatewayKeyDirectory(apigateway, plan, ttl=1.0, clock=clock)
    assert keys.find(VALUE) == GatewayKey(ann, "ann", VALUE, enabled=True)
    assert keys.find("not-in-the-plan-0123456789") is None
    assert keys.find("") is None
    _disable(apigateway, ann)
    assert keys.find(VALUE) == GatewayKey(ann, "ann", VALUE, enabled=True)  # still cached
    clock.advance(1.0)
    found = keys.find(VALUE)
    assert found is not None
    assert not found.enabled
    assert VALUE not in repr(found)
