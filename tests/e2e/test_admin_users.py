"""`python -m exportsync_api.admin users ...` against a live devstack: the key it prints works
through the gateway, a revoked key is refused, a rotated key gives way to its successor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from support.devstack import DevstackInfo, command_env, start_devstack, wait_for


def _admin(info: DevstackInfo, *args: str) -> tuple[list[dict[str, Any]], str]:
    """Run the admin tool; its stdout as JSON lines, and its stderr."""
    command = [
        sys.executable,
        "-m",
        "exportsync_api.admin",
        "--endpoint-url",
        info.aws_endpoint,
        "--region",
        info.region,
        "--table",
        "exportsync-users",
        "users",
        *args,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, env=command_env(), timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def _send(info: DevstackInfo, key: str, user: str) -> requests.Response:
    session = {"user_id": user, "timestamp": "2026-03-01T09:00:00Z"}
    return requests.post(
        info.api_url + "/session", headers={"x-api-key": key}, json=session, timeout=30
    )


def _forbidden(info: DevstackInfo, key: str, user: str) -> bool:
    response = _send(info, key, user)
    return response.status_code == 403 and response.json() == {"message": "Forbidden"}


def test_add_revoke_rotate_through_the_gateway(tmp_path: Path) -> None:
    with start_devstack(tmp_path, "--rate", "0", "--quota", "0") as info:
        [dana], dana_err = _admin(info, "add", "dana")
        assert dana["user_id"] == "dana"
        assert dana["api_key"] not in dana_err
        # New keys reach the gateway within its key cache; poll, never sleep.
        assert wait_for(lambda: _send(info, dana["api_key"], "dana").status_code == 200)
        assert [r["status"] for r in _send(info, dana["api_key"], "dana").json()["results"]] == [
            "duplicate"
        ]

        [revoked], _ = _admin(info, "revoke", "dana")
        assert revoked == {"user_id": "dana", "revoked": [dana["api_key_id"]]}
        assert wait_for(lambda: _forbidden(info, dana["api_key"], "dana"))

        [eve], _ = _admin(info, "add", "eve")
        assert wait_for(lambda: _send(info, eve["api_key"], "eve").status_code == 200)
        [eve2], _ = _admin(info, "rotate", "eve")
        assert eve2["api_key"] != eve["api_key"]
        assert wait_for(lambda: _forbidden(info, eve["api_key"], "eve"))
        assert _send(info, eve2["api_key"], "eve").status_code == 200

        listed, _ = _admin(info, "list")
        text = json.dumps(listed)
        for key in (dana["api_key"], eve["api_key"], eve2["api_key"], info.api_key):
            assert key not in text
        statuses = {(row["user_id"], row["api_key_id"]): row["status"] for row in listed}
        assert statuses[("dana", dana["api_key_id"])] == "revoked"
        assert statuses[("eve", eve["api_key_id"])] == "rotated"
        assert statuses[("eve", eve2["api_key_id"])] == "active"
        assert statuses[(info.user_id, _first_key_id(listed, info.user_id))] == "active"
        assert info.api_key not in info.stderr_path.read_text(encoding="utf-8")


def _first_key_id(rows: list[dict[str, Any]], user: str) -> str:
    [row] = [row for row in rows if row["user_id"] == user]
    key_id: str = row["api_key_id"]
    return key_id
