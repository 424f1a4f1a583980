"""Many users on one backend, on the real usage plan (1 request/s, burst 1, 10 a day per key).

A devstack with `--users 3`: the first user spends their day by hand and gets `Limit Exceeded`
while the other two users' daemons deliver; each user's objects sit under `uploads/{their user}/`
and their sessions under their user_id; a session forged in another user's name fails alone; and
`/usage` `by_key` shows 0 throttled and 0 quota_exceeded for the daemons' keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from contextlib import ExitStack
from pathlib import Path

import requests

from support.daemon import run_daemon, settled, spool_items, write_config
from support.devstack import DevstackInfo, dynamo_items, s3_objects, start_devstack, usage, wait_for

FORGED_AT = "2026-11-27T03:03:03Z"


def _as_user(info: DevstackInfo, index: int) -> DevstackInfo:
    user = info.users[index]
    return dataclasses.replace(info, api_key=user["api_key"], user_id=user["user_id"])


def _export(base: Path, user: str, victim: str | None) -> bytes:
    """One export: a CSV and a session; with `victim`, also a session forged in their name."""
    export = base / "export"
    export.mkdir(parents=True, exist_ok=True)
    csv = f"date,user\n2026-11-26,{user}\n".encode()
    (export / "day.csv").write_bytes(csv)
    session = {"timestamp": "2026-11-26T08:00:00Z", "steps": 1200}
    (export / "walk.session.json").write_text(json.dumps(session))
    if victim is not None:
        forged = {"user_id": victim, "timestamp": FORGED_AT, "steps": 1}
        (export / "forged.session.json").write_text(json.dumps(forged))
    return csv


def _spend_one(info: DevstackInfo, sent: list[str]) -> bool:
    """One hand-made request with the first user's key; True once the day is spent."""
    session = {"user_id": info.user_id, "timestamp": f"2026-11-26T09:00:{len(sent):02d}Z"}
    response = requests.post(
        info.api_url + "/session", headers={"x-api-key": info.api_key}, json=session, timeout=30
    )
    sent.append(response.json().get("message", "ok") if response.status_code != 200 else "ok")
    return response.status_code == 429 and sent[-1] == "Limit Exceeded"


def test_one_spent_key_does_not_stop_the_others_and_users_stay_apart(tmp_path: Path) -> None:
    with start_devstack(tmp_path, "--users", "3") as info, ExitStack() as stack:
        hand, bob, carol = (_as_user(info, n) for n in range(3))
        csv = {
            bob.user_id: _export(tmp_path / "bob", bob.user_id, victim=carol.user_id),
            carol.user_id: _export(tmp_path / "carol", carol.user_id, victim=None),
        }
        daemons = {
            who.user_id: stack.enter_context(run_daemon(write_config(tmp_path / name, who)))
            for name, who in (("bob", bob), ("carol", carol))
        }
        sent: list[str] = []
        # The hand-made requests run while the daemons deliver; throttled tries cost no quota.
        assert wait_for(lambda: _spend_one(hand, sent), deadline=40.0, interval=0.25)
        assert sent.count("ok") == 10
        assert wait_for(lambda: settled(tmp_path / "bob" / "state", 3), deadline=60.0)
        assert wait_for(lambda: settled(tmp_path / "carol" / "state", 2), deadline=60.0)
        for daemon in daemons.values():
            assert daemon.terminate() == 0

        objects = s3_objects(info)
        assert {"/".join(key.split("/")[:2]) for key in objects} == {"uploads/" + u for u in csv}
        for key, data in objects.items():
            _uploads, owner, digest, _name = key.split("/")
            assert data == csv[owner]
            assert digest == hashlib.sha256(csv[owner]).hexdigest()

        items = dynamo_items(info)
        by_user = {u: sorted(i["timestamp"] for i in items if i["user_id"] == u) for u in csv}
        assert by_user == {
            bob.user_id: ["2026-11-26T08:00:00Z"],
            carol.user_id: ["2026-11-26T08:00:00Z"],
        }
        assert FORGED_AT not in {item["timestamp"] for item in items}
        assert sum(item["user_id"] == hand.user_id for item in items) == 10

        bob_items = {item.path.name: item for item in spool_items(tmp_path / "bob" / "state")}
        assert bob_items["forged.session.json"].state == "failed"
        assert "user_mismatch" in (bob_items["forged.session.json"].last_error or "")
        assert bob_items["day.csv"].state == bob_items["walk.session.json"].state == "delivered"
        assert {i.state for i in spool_items(tmp_path / "carol" / "state")} == {"delivered"}

        by_key = usage(info)["by_key"]
        assert by_key[hand.user_id]["quota_exceeded"] >= 1
        for user in csv:
            assert (by_key[user]["throttled"], by_key[user]["quota_exceeded"]) == (0, 0)
            assert by_key[user]["accepted"] >= 1
