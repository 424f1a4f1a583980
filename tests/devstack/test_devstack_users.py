"""`--users N`: every user has its own API key in moto's API Gateway, its own plan and identity."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import boto3
import requests

from support.devstack import DevstackInfo, dynamo_items, s3_objects, start_devstack, usage, wait_for


def _post(info: DevstackInfo, key: str, path: str, **kw: Any) -> requests.Response:
    return requests.post(info.api_url + path, headers={"x-api-key": key}, timeout=30, **kw)


def _apigateway(info: DevstackInfo) -> Any:
    return boto3.client(
        "apigateway",
        endpoint_url=info.aws_endpoint,
        region_name=info.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_users_get_their_own_keys_identities_and_counters(tmp_path: Path) -> None:
    args = ("--users", "3", "--user-id", "ann", "--rate", "0", "--quota", "2")
    with start_devstack(tmp_path, *args) as info:
        assert [user["user_id"] for user in info.users] == ["ann", "ann-2", "ann-3"]
        assert (info.users[0]["api_key"], info.users[0]["user_id"]) == (info.api_key, "ann")
        assert len({user["api_key"] for user in info.users}) == 3
        keys = _apigateway(info).get_api_keys(includeValues=True)["items"]
        assert sorted((k["name"], k["value"], k["enabled"]) for k in keys) == sorted(
            (u["user_id"], u["api_key"], True) for u in info.users
        )
        for user in info.users:
            body = f"data of {user['user_id']}\n".encode()
            files = {"file": ("a.csv", body, "text/csv")}
            result = _post(info, user["api_key"], "/upload", files=files).json()
            digest = hashlib.sha256(body).hexdigest()
            assert result["results"][0]["key"] == f"uploads/{user['user_id']}/{digest}/a.csv"
            session = {"user_id": user["user_id"], "timestamp": "2026-01-01T00:00:00Z"}
            assert _post(info, user["api_key"], "/session", json=session).status_code == 200
        # ann's third request is over her day; the others still have theirs.
        assert _post(info, info.api_key, "/session", json={}).json() == {
            "message": "Limit Exceeded"
        }
        assert {key.split("/")[1] for key in s3_objects(info)} == {"ann", "ann-2", "ann-3"}
        assert [item["user_id"] for item in dynamo_items(info)] == ["ann", "ann-2", "ann-3"]
        by_key = usage(info)["by_key"]
        assert {u: (c["accepted"], c["quota_exceeded"]) for u, c in by_key.items()} == {
            "ann": (2, 1),
            "ann-2": (2, 0),
            "ann-3": (2, 0),
        }


def test_a_key_disabled_in_api_gateway_is_refused_with_403(tmp_path: Path) -> None:
    with start_devstack(tmp_path, "--users", "2", "--rate", "0", "--quota", "0") as info:
        victim, other = info.users[1], info.users[0]
        client = _apigateway(info)
        [key_id] = [
            k["id"] for k in client.get_api_keys()["items"] if k["name"] == victim["user_id"]
        ]
        client.update_api_key(
            apiKey=key_id, patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}]
        )
        session = {"timestamp": "2026-01-01T00:00:00Z"}

        def refused() -> bool:
            response = _post(info, victim["api_key"], "/session", json=session)
            return response.status_code == 403 and response.json() == {"message": "Forbidden"}

        assert wait_for(refused, deadline=10.0, interval=0.1)
        assert _post(info, other["api_key"], "/session", json=session).status_code == 200


def test_state_dir_keeps_every_users_key_and_day(tmp_path: Path) -> None:
    args = ("--users", "2", "--state-dir", str(tmp_path / "state"), "--quota", "1", "--rate", "0")
    session: dict[str, list[object]] = {"sessions": []}
    with start_devstack(tmp_path, *args) as first:
        second_user = first.users[1]
        assert _post(first, second_user["api_key"], "/session", json=session).status_code != 429
    with start_devstack(tmp_path, *args) as again:
        assert again.users == first.users
        over = _post(again, second_user["api_key"], "/session", json=session)
        assert over.json() == {"message": "Limit Exceeded"}
        # The first user's day was not spent, before or after the restart.
        assert _post(again, again.api_key, "/session", json=session).status_code != 429
