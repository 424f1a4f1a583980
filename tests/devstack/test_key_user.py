"""Through the devstack (gateway identity -> real handler -> moto): the API key's user wins over
a user named in the body, on every route."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import requests

from support.devstack import DevstackInfo, dynamo_items, s3_objects, start_devstack

pytestmark = pytest.mark.integration

OTHER = "mallory"


@pytest.fixture(scope="module")
def open_devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevstackInfo]:
    with start_devstack(tmp_path_factory.mktemp("devstack"), "--rate", "0", "--quota", "0") as info:
        yield info


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


def test_a_session_for_another_user_is_refused(open_devstack: DevstackInfo) -> None:
    sessions = [
        {"user_id": OTHER, "timestamp": "2026-02-17T10:00:00Z"},
        {"user_id": open_devstack.user_id, "timestamp": "2026-02-17T11:00:00Z"},
    ]
    results = _post(open_devstack, "/session", json={"sessions": sessions})
    assert [r["status"] for r in results] == ["rejected", "stored"]
    assert {item["user_id"] for item in dynamo_items(open_devstack)} == {open_devstack.user_id}
