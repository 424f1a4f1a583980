"""The user registry: key id -> user, revoked keys refused, lookups cached per container."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from apigw_events import body_of, rest_event
from lambda_support import REGION
from moto import mock_aws

from exportsync_api.accounts import KeyManager, create_registry_table
from exportsync_api.admin import main as admin_main
from exportsync_api.app import Dependencies, handle
from exportsync_api.errors import ApiError
from exportsync_api.registry import (
    CachedUserDirectory,
    DynamoUserDirectory,
    KeyUser,
    resolve_user,
)
from exportsync_api.settings import ConfigError, load_settings

USERS_TABLE = "exportsync-test-users"


class ScriptedDirectory:
    """A registry whose items the test sets; counts lookups."""

    def __init__(self, items: dict[str, KeyUser]) -> None:
        self.items = items
        self.lookups = 0

    def lookup(self, api_key_id: str) -> KeyUser | None:
        self.lookups += 1
        return self.items.get(api_key_id)


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_overrides_win_then_the_registry_then_the_key_id_itself() -> None:
    directory = ScriptedDirectory({"k1": KeyUser("bob"), "k2": KeyUser("carol", "revoked")})
    assert resolve_user("k1", {"k1": "alice"}, directory) == "alice"
    assert resolve_user("k1", {}, directory) == "bob"
    assert resolve_user("k9", {}, directory) == "k9"
    assert resolve_user("k9", {}, None) == "k9"
    assert resolve_user(None, {}, directory) is None
    with pytest.raises(ApiError) as caught:
        resolve_user("k2", {}, directory)
    assert (caught.value.status, caught.value.code) == (403, "key_revoked")


def test_cache_answers_within_its_ttl_and_rereads_after() -> None:
    inner = ScriptedDirectory({"k1": KeyUser("bob")})
    clock = Ticks()
    cached = CachedUserDirectory(inner, ttl=60.0, clock=clock)
    assert cached.lookup("k1") == KeyUser("bob")
    assert cached.lookup("k404") is None
    inner.items["k1"] = KeyUser("bob", "revoked")
    clock.now += 59.0
    assert (cached.lookup("k1"), cached.lookup("k404"), inner.lookups) == (KeyUser("bob"), None, 2)
    clock.now += 1.0
    assert cached.lookup("k1") == KeyUser("bob", "revoked")
    assert inner.lookups == 3


def test_a_revoked_key_is_refused_with_403_and_nothing_is_stored(
    memory_deps: Dependencies,
) -> None:
    directory = ScriptedDirectory({"kid-alice": KeyUser("alice", "revoked")})
    settings = dataclasses.replace(memory_deps.settings, key_users={})
    deps = dataclasses.replace(memory_deps, settings=settings, users=directory)
    session = json.dumps({"user_id": "alice", "timestamp": "2026-02-17T10:00:00Z"})
    response = handle(rest_event("/session", session), None, deps)
    assert response["statusCode"] == 403
    assert body_of(response) == {
        "error": {
            "code": "key_revoked",
            "message": "this API key's user is revoked; ask for a new key",
        }
    }
    for route in ("/upload", "/batch"):
        form = rest_event(route, b"", content_type="multipart/form-data; boundary=x")
        assert handle(form, None, deps)["statusCode"] == 403, route
    presign = rest_event("/presign", json.dumps({"files": []}))
    assert handle(presign, None, deps)["statusCode"] == 403
    assert deps.sessions.items == {}  # type: ignore[attr-defined]


def test_an_active_registered_key_acts_as_its_user(memory_deps: Dependencies) -> None:
    directory = ScriptedDirectory({"kid-alice": KeyUser("zoe")})
    settings = dataclasses.replace(memory_deps.settings, key_users={})
    deps = dataclasses.replace(memory_deps, settings=settings, users=directory)
    session = json.dumps({"user_id": "zoe", "timestamp": "2026-02-17T10:00:00Z"})
    results = body_of(handle(rest_event("/session", session), None, deps))["results"]
    assert [r["status"] for r in results] == ["stored"]


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any, str]]:
    with mock_aws():
        apigw = boto3.client("apigateway", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_registry_table(dynamodb, USERS_TABLE)
        plan = apigw.create_usage_plan(name="plan")["id"]
        yield apigw, dynamodb, plan


def test_key_manager_add_rotate_revoke_against_dynamodb_and_api_gateway(
    aws: tuple[Any, Any, str],
) -> None:
    apigw, dynamodb, plan = aws
    manager = KeyManager(apigw, dynamodb, plan, USERS_TABLE, now=lambda: "2026-01-01T00:00:00")
    directory = DynamoUserDirectory(dynamodb, USERS_TABLE)
    first = manager.add("dana")
    assert first.value not in repr(first)
    assert directory.lookup(first.api_key_id) == KeyUser("dana")
    assert apigw.get_api_key(apiKey=first.api_key_id)["enabled"] is True
    plan_keys = apigw.get_usage_plan_keys(usagePlanId=plan)["items"]
    assert [k["id"] for k in plan_keys] == [first.api_key_id]

    second = manager.rotate("dana")
    assert second.value != first.value
    assert directory.lookup(first.api_key_id) == KeyUser("dana", "rotated")
    assert apigw.get_api_key(apiKey=first.api_key_id)["enabled"] is False
    assert directory.lookup(second.api_key_id) == KeyUser("dana")

    assert manager.revoke("dana") == [second.api_key_id]
    assert directory.lookup(second.api_key_id) == KeyUser("dana", "revoked")
    assert apigw.get_api_key(apiKey=second.api_key_id)["enabled"] is False
    statuses = sorted(row.status for row in manager.list_keys())
    assert statuses == ["revoked", "rotated"]
    assert directory.lookup("never-registered") is None


def test_admin_needs_a_registry_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert admin_main(["users", "list"], environ={}) == 2
    assert "--table" in capsys.readouterr().err


def test_admin_add_prints_the_key_once_on_stdout(
    aws: tuple[Any, Any, str], capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"EXPORTSYNC_USERS_TABLE": USERS_TABLE, "AWS_REGION": REGION}
    assert admin_main(["users", "add", "fay"], environ=env) == 0
    out, err = capsys.readouterr()
    [line] = out.splitlines()
    printed = json.loads(line)
    assert set(printed) == {"user_id", "api_key_id", "api_key"}
    assert printed["api_key"] not in err
    assert admin_main(["users", "add", "fay"], environ=env) == 1  # one active key per user
    assert "rotate" in capsys.readouterr().err


def test_settings_name_the_registry_and_its_cache() -> None:
    base = {"EXPORTSYNC_BUCKET": "b", "EXPORTSYNC_TABLE": "t"}
    assert (load_settings(base).users_table, load_settings(base).users_cache_seconds) == (None, 60)
    settings = load_settings(
        base | {"EXPORTSYNC_USERS_TABLE": "users", "EXPORTSYNC_USERS_CACHE_SECONDS": "2.5"}
    )
    assert (settings.users_table, settings.users_cache_seconds) == ("users", 2.5)
    for bad in ("-1", "soon", "3601"):
        with pytest.raises(ConfigError, match="EXPORTSYNC_USERS_CACHE_SECONDS"):
            load_settings(base | {"EXPORTSYNC_USERS_CACHE_SECONDS": bad})


def test_purge_deletes_long_retired_keys_and_keeps_their_record(
    aws: tuple[Any, Any, str],
) -> None:
    apigw, dynamodb, plan = aws
    now = ["2026-01-01T00:00:00+00:00"]
    manager = KeyManager(apigw, dynamodb, plan, USERS_TABLE, now=lambda: now[0])
    old = manager.add("gus")
    new = manager.rotate("gus")  # the old key retired at 2026-01-01
    now[0] = "2026-03-01T00:00:00+00:00"
    assert manager.purge("2026-01-01T00:00:00+00:00") == []  # not retired before that
    assert manager.purge("2026-02-01T00:00:00+00:00") == [old.api_key_id]
    remaining = {k["id"] for k in apigw.get_api_keys()["items"]}
    assert remaining == {new.api_key_id}
    directory = DynamoUserDirectory(dynamodb, USERS_TABLE)
    assert directory.lookup(old.api_key_id) == KeyUser("gus", "rotated")  # still refused
    assert manager.purge("2026-02-01T00:00:00+00:00") == []  # once only
