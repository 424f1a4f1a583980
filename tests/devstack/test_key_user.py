"""Through the devstack (gateway identity -> real handler -> moto): the API key's user wins over
a user named in the body, on every route."""

from __future__ import annotations

import hashlib
import json

import requests

from support.devstack import DevstackInfo, dynamo_items, s3_objects

OTHER = "mallory"


def _post(info: DevstackInfo, route: str, **kwargs: object) -> list[dict[str, object]]:
    response = requests.post(
        f"{info.api_url}{route}",
        headers={"x-api-key": info.api_key},
        timeout=30,
        **kwargs,  # type: ignore[arg-type]
    )
    assert response.status_code == 200, response.text
    results: list[dict[str, object]] = response.json()["results"]
    return results


def test_upload_lands_under_the_keys_user_whatever_the_form_says(
    open_devstack: DevstackInfo,
) -> None:
    data = b"a,b\n1,2\n"
    (result,) = _post(
        open_devstack,
        "/upload",
        files={"file": ("x.csv", data, "text/csv")},
        data={"user_id": OTHER},
    )
    key = f"uploads/{open_devstack.user_id}/{hashlib.sha256(data).hexdigest()}/x.csv"
    assert result["key"] == key
    assert s3_objects(open_devstack)[key] == data
    assert not [k for k in s3_objects(open_devstack) if f"/{OTHER}/" in k]


def test_presign_names_the_keys_user_whatever_the_body_says(open_devstack: DevstackInfo) -> None:
    data = b"big,file\n" * 10
    sha = hashlib.sha256(data).hexdigest()
    (result,) = _post(
        open_devstack,
        "/presign",
        json={"user_id": OTHER, "files": [{"filename": "big.csv", "sha256": sha, "size": 90}]},
    )
    assert result["key"] == f"uploads/{open_devstack.user_id}/{sha}/big.csv"


def _sessions(info: DevstackInfo, hour: str) -> list[dict[str, str]]:
    """One session naming another user, one naming the key's own."""
    return [
        {"user_id": OTHER, "timestamp": f"2026-02-17T{hour}:00:00Z"},
        {"user_id": info.user_id, "timestamp": f"2026-02-17T{hour}:30:00Z"},
    ]


def test_a_session_for_another_user_is_refused(open_devstack: DevstackInfo) -> None:
    results = _post(open_devstack, "/session", json={"sessions": _sessions(open_devstack, "10")})
    assert [r["status"] for r in results] == ["rejected", "stored"]
    assert {item["user_id"] for item in dynamo_items(open_devstack)} == {open_devstack.user_id}


def test_batch_cannot_name_another_user(open_devstack: DevstackInfo) -> None:
    data = b"batch,file\n"
    sha = hashlib.sha256(data).hexdigest()
    presign = {"files": [{"filename": "big.csv", "sha256": sha, "size": 90}], "user_id": OTHER}
    results = _post(
        open_devstack,
        "/batch",
        files=[
            ("user_id", (None, OTHER.encode(), "text/plain")),
            ("file", ("b.csv", data, "text/csv")),
            ("presign", (None, json.dumps(presign).encode(), "application/json")),
            (
                "session",
                (None, json.dumps(_sessions(open_devstack, "12")).encode(), "application/json"),
            ),
        ],
    )
    assert [r["status"] for r in results] == ["stored", "upload", "rejected", "stored"]
    user = open_devstack.user_id
    assert [results[0]["key"], results[1]["key"]] == [
        f"uploads/{user}/{sha}/b.csv",
        f"uploads/{user}/{sha}/big.csv",
    ]
    assert not [k for k in s3_objects(open_devstack) if f"/{OTHER}/" in k]
    assert {item["user_id"] for item in dynamo_items(open_devstack)} == {user}
